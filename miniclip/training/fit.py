"""fit(): the training loop around ``train_step``, and what a run writes as it goes.

    for k = start .. steps-1:                       # batch k: a pure function of (seed, k)
        optimizer.lr = schedule(k)                  # warmup, then cosine
        loss = step(batch)                          # train_step: forward, loss, backward, AdamW
        record the step                             # metrics.jsonl, the progress bar, timing.json
        every eval_every steps: evaluate            # zero-shot, held-out pairs and styles, retrieval
        every checkpoint_every steps: checkpoint    # and after the last step
    the end: a final evaluation on a larger fresh set, model.npz, the plots

Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and raises KeyboardInterrupt; a
second one stops at once, without a checkpoint of half-updated weights. Distributed: every rank
steps; only rank 0 evaluates and writes the run folder (``distributed.py``).
"""

import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict

from ..evaluation.plots import ARRAYS_FILE, METRICS_FILE, plot_run
from ..evaluation.runs import eval_line
from .checkpoint import atomic_write_npz, save_checkpoint
from .step import NonFiniteError

MODEL_FILE = "model.npz"
TIMING_FILE = "timing.json"


def fit(model, optimizer, schedule, step_fn, batches, evaluate, run, start, on_step=None, workers=0):
    """Train from step ``start`` to ``run.config.steps``; returns (steps done, the final evaluation's record).

    ``step_fn(batch) -> loss``: one optimizer step (``train_step`` with the run's loss and world).
    ``batches.iterate(start, workers)`` yields (k, batch k). ``evaluate(step, final=False)``: ``(record,
    arrays)``, or None when there is nothing to evaluate on. ``run``: the run folder's ``RunFiles``.
    ``on_step(step, record, model)`` is called after every step (tests use it to interrupt a run).
    """
    config, world = run.config, run.world
    ctrl_c = CtrlC(signals=world.stop_signals)
    progress = Progress(config, start, run.log)
    step = start              # optimizer steps completed so far
    updating = False          # True while parameters are being written (not checkpointable)
    try:
        with ctrl_c, progress:
            if world.is_main and run.missed_evaluation(start):  # stopped between a step and its evaluation
                run.evaluate(evaluate, start)
            t_step = time.perf_counter()
            for k, batch in batches.iterate(start, workers=workers):
                optimizer.lr = schedule(k)
                updating = True   # a second Ctrl-C inside the step: no checkpoint of half-updated weights
                try:
                    loss = step_fn(batch)
                except NonFiniteError as exc:
                    raise NonFiniteError(f"step {k + 1}: {exc}") from None
                updating = False
                step = k + 1
                record = run.write_step(step, loss, optimizer.lr, model)
                seconds = time.perf_counter() - t_step
                run.add_step_time(seconds)
                progress.update(record, seconds)
                if world.is_main and step % config.eval_every == 0 and step < config.steps:
                    evaluation = run.evaluate(evaluate, step)
                    if evaluation is not None:
                        progress.write(eval_line(evaluation))
                if step % config.checkpoint_every == 0 or step == config.steps:
                    run.checkpoint(step)
                if on_step is not None:
                    on_step(step, record, model)
                if ctrl_c.requested:
                    raise KeyboardInterrupt
                t_step = time.perf_counter()  # evaluation and checkpoints are not step time
    except KeyboardInterrupt:
        run.close()
        if not updating and step > start and not run.has_checkpoint(step):
            run.checkpoint(step)
        run.tell_how_to_resume(step, ctrl_c.requested)
        raise
    except BaseException:
        run.close()
        raise
    if not world.is_main:  # distributed: rank 0 evaluates and writes the end of the run
        run.close()
        return step, {}
    return step, run.finish(evaluate, step)


class Progress:
    """The progress bar (tqdm): loss, temperature and images per second (a moving average)."""

    def __init__(self, config, start, log):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=config.steps, initial=start, disable=not config.progress, unit="step",
                        dynamic_ncols=True, desc="train")
        self.write = self.bar.write if config.progress else log  # a line above the bar
        self.batch_size, self.speed = config.batch_size, None

    def update(self, record, seconds):
        speed = self.batch_size / seconds
        self.speed = speed if self.speed is None else 0.9 * self.speed + 0.1 * speed
        tau = f" tau {record['temperature']:.4f}" if "temperature" in record else ""
        self.bar.set_postfix_str(f"loss {record['loss']:.3f}{tau} {self.speed:.0f} img/s", refresh=False)
        self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


class CtrlC:
    """First Ctrl-C (or SIGTERM, as ``kill`` sends): finish the current step, checkpoint, stop.
    A second one: stop at once. ``signals``: the signals handled so (distributed: ``World.stop_signals``)."""

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM)):
        self.signals, self.requested, self.previous = signals, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


class RunFiles:
    """What a run writes into its folder as it goes: ``metrics.jsonl`` (a record per step and per
    evaluation), ``timing.json`` (wall-clock numbers, kept out of the metrics so that those repeat
    byte for byte), ``checkpoints/step_*.npz``, ``eval_arrays.npz``; at the end ``model.npz`` and the
    plots. Distributed: only rank 0 writes (the others write their records to /dev/null)."""

    def __init__(self, config, world, manager, records, model, optimizer, tokenizer, model_args, resume, log):
        self.config, self.world, self.manager, self.records, self.log = config, world, manager, records, log
        self.model, self.optimizer, self.tokenizer, self.model_args = model, optimizer, tokenizer, model_args
        self.run_dir = config.out
        self.timing = {"train_seconds": 0.0, "eval_seconds": 0.0, "steps": 0, "wall_seconds": 0.0}
        timing_path = os.path.join(self.run_dir, TIMING_FILE)
        if resume and os.path.exists(timing_path):  # a resumed run adds to the earlier time
            with open(timing_path, encoding="utf-8") as f:
                self.timing.update({k: v for k, v in json.load(f).items() if k in self.timing})
        self.wall_before, self.t_start = self.timing["wall_seconds"], time.perf_counter()
        self.metrics = open(os.path.join(self.run_dir, METRICS_FILE) if world.is_main else os.devnull, "a",
                            encoding="utf-8")

    def write(self, record):
        self.records.append(record)
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()

    def write_step(self, step, loss, lr, model):
        """The step's record: loss, learning rate and (CLIP) the temperature."""
        record = {"kind": "train", "step": step, "loss": loss, "lr": lr, "batch_size": self.config.batch_size}
        if self.config.objective == "clip":
            logit_scale = float(model.logit_scale.data)
            temperature = math.exp(-logit_scale)  # tau: logits = cosine / tau = cosine * exp(logit_scale)
            record.update(logit_scale=logit_scale, temperature=temperature)
        self.write(record)
        return record

    def add_step_time(self, seconds):
        self.timing["train_seconds"] += seconds
        self.timing["steps"] += 1

    def missed_evaluation(self, step):
        """True when a resumed run stopped after ``step`` but before the evaluation due at it."""
        return (step % self.config.eval_every == 0 and 0 < step < self.config.steps
                and not any(r["kind"] == "eval" and r["step"] == step for r in self.records))

    def evaluate(self, evaluate, step, final=False):
        """Run ``evaluate``; write its arrays and (but the final one, written by ``finish``) its record;
        return the record (None when there was nothing to evaluate on)."""
        t = time.perf_counter()
        result = evaluate(step, final=final)
        if result is None:
            return None
        record, arrays = result
        record = {"kind": "final" if final else "eval", "step": step, **record}
        atomic_write_npz(os.path.join(self.run_dir, ARRAYS_FILE), arrays)
        self.timing["eval_seconds"] += time.perf_counter() - t
        if not final:
            self.write(record)
        return record

    def checkpoint(self, step):
        if not self.world.is_main:  # distributed: only rank 0 writes
            return
        self.manager.save(step, model_state=self.model.state_dict(), optimizer_state=self.optimizer.state_dict(),
                          rng_state={"note": "batches and evaluation sets are pure functions of (seed, step)",
                                     "seed": self.config.seed},
                          config=asdict(self.config), tokenizer_merges=self.tokenizer.merges_text(),
                          extra={"model_args": self.model_args})
        self.save_timing()  # with each checkpoint, so that a resumed run adds to the time up to it

    def has_checkpoint(self, step):
        return self.manager.latest() == self.manager.path_for(step)

    def save_timing(self):
        timing = self.timing
        timing["wall_seconds"] = self.wall_before + time.perf_counter() - self.t_start
        if timing["steps"]:
            timing["seconds_per_step"] = timing["train_seconds"] / timing["steps"]
            timing["images_per_second"] = self.config.batch_size / timing["seconds_per_step"]
        path = os.path.join(self.run_dir, TIMING_FILE)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(timing, f, indent=2)
        os.replace(path + ".tmp", path)

    def tell_how_to_resume(self, step, signal_name):
        latest, run_dir = self.manager.latest(), self.run_dir
        how = f"stopped by {signal_name}" if signal_name else "interrupted"
        if latest is None:
            self.log(f"\n{how} after step {step}, before the first checkpoint; nothing to resume "
                     f"(`miniclip train --resume {run_dir}` starts it over)")
        else:
            self.log(f"\n{how} after step {step}; newest checkpoint {latest}. "
                     f"Continue with: miniclip train --resume {run_dir}")

    def finish(self, evaluate, step):
        """The end of a run: a final evaluation on a larger fresh set, model.npz, timing, plots."""
        config, run_dir = self.config, self.run_dir
        final = self.evaluate(evaluate, step, final=True)
        if final is None:  # a CSV run without --val-data: the record only marks the end
            final = {"kind": "final", "step": step}
            self.log(f"final (step {step}): no validation data was given; pass --val-data VAL.csv (image-caption "
                     f"pairs kept out of training) for retrieval R@1/5/10, or run: miniclip eval {run_dir} "
                     f"--data VAL.csv")
        else:
            seen = (f"{config.final_eval_images}+{config.final_eval_heldout_images} fresh images"
                    if config.train_data is None else config.val_data)
            self.log(eval_line(final).replace(f"step {step:>5}", f"final (step {step}, {seen})"))
        self.write(final)
        self.close()
        save_checkpoint(os.path.join(run_dir, MODEL_FILE), model_state=self.model.state_dict(), step=step,
                        config=asdict(config), tokenizer_merges=self.tokenizer.merges_text(),
                        extra={"model_args": self.model_args})
        self.save_timing()
        if config.plots:
            plot_run(run_dir)
        return final

    def close(self):
        self.metrics.close()


def read_records(path):
    """The records of ``metrics.jsonl``; a torn last line (a write cut short by a kill or a full
    disk) is dropped, since the steps after the newest checkpoint are redone anyway."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}, line {i + 1}: not valid JSON") from None
    return records


def rewrite_records(path, records):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)
