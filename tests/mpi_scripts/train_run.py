"""Under mpiexec: ``miniclip.training.train`` on P ranks, optionally failing on one rank, or resuming.

Usage: mpiexec -n P python train_run.py CONFIG.json [--fail-rank R --fail-at-step K] [--resume]
CONFIG.json holds TrainConfig's fields (``out`` included). ``--fail-*`` makes rank R raise in the
``on_step`` hook after step K: the whole job must end with that error, keeping the last checkpoint.
"""

import argparse
import json

from miniclip.training.distributed import init_distributed
from miniclip.training import TrainConfig, train

parser = argparse.ArgumentParser()
parser.add_argument("config")
parser.add_argument("--fail-rank", type=int)
parser.add_argument("--fail-at-step", type=int)
parser.add_argument("--resume", action="store_true")
args = parser.parse_args()

world = init_distributed(required=True)
with open(args.config) as f:
    fields = json.load(f)


def on_step(step, record, model):
    if world.rank == args.fail_rank and step == args.fail_at_step:
        raise RuntimeError(f"simulated failure on rank {world.rank} after step {step}")


if args.resume:
    config = TrainConfig(out=fields["out"], progress=False, plots=False)
else:
    config = TrainConfig(**fields)
train(config, resume=args.resume, on_step=on_step, log=lambda *a: None, world=world)
