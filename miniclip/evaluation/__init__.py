"""Evaluation: what a CLIP can do without more training, and how to tell.

    zeroshot.py         zero-shot classifiers from prompts, top-k accuracy
    retrieval.py        retrieval recall@k in both directions
    runs.py             a training run's evaluations: fresh images, held-out pairs and styles, --val-data
    saved.py            ``miniclip eval``: a saved model evaluated as its run's final evaluation was
    probe.py            linear probes (logistic regression with SciPy's L-BFGS)
    fewshot.py          few-shot probes against zero-shot (chapter 12)
    embedding_space.py  the modality gap (chapter 12)
    plots.py            the PNG plots of a run
"""
