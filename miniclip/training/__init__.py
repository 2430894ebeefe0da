"""Training: the step, the loop around it, and what a run keeps.

    config.py      TrainConfig: everything a run depends on (saved as config.json)
    step.py        train_step: forward, loss, backward, AdamW, clamp the temperature
    run.py         train(): a run from its config (run folder, tokenizer, model, data, the loop)
    optim.py       AdamW, the warmup-cosine schedule, the temperature clamp, gradient clipping
    checkpoint.py  atomic .npz checkpoints and the manager that keeps the newest N
    run_folder.py  one writer per run folder (the lock and the marker)
    distributed.py data parallelism over MPI ranks
"""
