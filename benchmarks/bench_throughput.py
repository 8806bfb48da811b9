"""Training throughput: aekit's trainer against hand-written PyTorch, side by side in one run.

Same network (Hinton's 784-1000-500-250-30, GELU units, linear code, sigmoid output), same loss
(binary cross-entropy summed over pixels, averaged over images), same optimizer (Adam, lr 1e-3), same
batch size, same data. Two measurements, each as ratios of runs alternated in one invocation (drift in
a shared machine's speed hits every contender alike), median over repeats, with the spread of the
per-repeat ratios so the noise is visible:

1. Per epoch, in this process: the hand-written loop users write (a DataLoader over a TensorDataset,
   ``nn.Sigmoid`` output, ``F.binary_cross_entropy``), a tuned step (the data as one contiguous tensor
   indexed by a shuffled permutation, fused Adam, BCE with logits, ``set_to_none`` gradients, no
   per-step host syncs), aekit's trainer, and pythae 0.1.2's trainer when its environment exists; and,
   as a bound rather than a loop, the step's matrix products alone on the same shapes and batches (the
   rate no fp32 step of this network can pass on this BLAS and thread count). On CUDA also a
   hand-written CUDA-graph step (the tuned step captured once with ``torch.cuda.graph`` and replayed per
   batch, full batches only), the reference ANCHORS.md gives for one H100, and aekit with its graph off.
2. Whole processes, one epoch each: ``aekit train --family autoencoder --preset hinton --epochs 1``
   (which also holds out 10 % for validation, evaluates on a bounded sample and writes the report)
   against a script that imports torch, reads the same IDX files, trains one epoch with the
   hand-written loop and saves the weights.

    python benchmarks/bench_throughput.py --data-dir ../shared/data/mnist            # CPU, everything
    python benchmarks/bench_throughput.py --data-dir ../shared/data/mnist --limit 10000 --skip-process
    python benchmarks/bench_throughput.py --data-dir ../shared/data/mnist --device cuda --batch-size 256
    python benchmarks/bench_throughput.py --data-dir ../shared/data/mnist --device cuda --families --skip-pythae

``--families`` adds a table of the families with extra loss terms (denoising, contractive, sparse, the
VAE) on the same layout: seconds per epoch beside the plain autoencoder's, and which path the run's
history says its steps took (on CUDA a family must not fall back to eager steps unnoticed).

pythae pins old versions of its dependencies, so it lives in a virtual environment of its own; the
row reports "not installed" with the reason when that environment is missing:

    python -m venv /tmp/pythae-venv
    /tmp/pythae-venv/bin/pip install torch==2.13.0 pythae==0.1.2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import aekit
from aekit.engine.training import cpu_bf16_available

from _common import add_data_args, machine, table, timed_epochs, training_path

SRC = str(Path(__file__).resolve().parents[1] / "src")
PYTHAE_PYTHON = Path(os.environ.get("PYTHAE_VENV", "/tmp/pythae-venv")) / "bin" / "python"


def hinton_net(sigmoid_output: bool = True) -> nn.Sequential:
    dims = [784, 1000, 500, 250, 30]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers += [nn.Linear(a, b)] + ([nn.GELU()] if i < len(dims) - 2 else [])
    rdims = dims[::-1]
    for i, (a, b) in enumerate(zip(rdims[:-1], rdims[1:])):
        last = i == len(rdims) - 2
        layers += [nn.Linear(a, b)] + ([nn.Sigmoid()] if last and sigmoid_output else [] if last else [nn.GELU()])
    layers.append(nn.Unflatten(1, (1, 28, 28)))
    return nn.Sequential(*layers)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def bf16_products() -> Iterator[None]:
    """torch's own switch for bf16 inputs to fp32 matrix products on the CPU (oneDNN), restored afterwards."""
    before = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = before


def handwritten_bf16(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    """The hand-written loop with torch's bf16-products switch on."""
    with bf16_products():
        return handwritten(X, epochs, batch_size, device)


def handwritten(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    """The loop users write by hand; returns samples per second."""
    torch.manual_seed(0)
    model = hinton_net().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=batch_size, shuffle=True)
    seen = 0
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for (xb,) in loader:
            xb = xb.to(device)
            loss = F.binary_cross_entropy(model(xb), xb, reduction="sum") / xb.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += xb.shape[0]
    _sync(device)
    return seen / (time.perf_counter() - t0)


def tuned(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    """A tuned plain step: data on the device as one tensor, fused Adam, BCE with logits, no syncs."""
    torch.manual_seed(0)
    model = hinton_net(sigmoid_output=False).to(device)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    Xt = torch.from_numpy(X).to(device)
    n = Xt.shape[0]
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        for i in range(0, n, batch_size):
            xb = Xt[perm[i : i + batch_size]]
            loss = F.binary_cross_entropy_with_logits(model(xb), xb, reduction="sum") / xb.shape[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    _sync(device)
    return epochs * n / (time.perf_counter() - t0)


def graph_step(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    """The tuned step captured as one CUDA graph (gather, forward, backward, Adam) and replayed per batch."""
    torch.manual_seed(0)
    model = hinton_net(sigmoid_output=False).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    Xt = torch.from_numpy(X).to(device)
    n = Xt.shape[0]
    idx = torch.arange(batch_size, device=device)

    def step() -> None:
        xb = Xt[idx]
        loss = F.binary_cross_entropy_with_logits(model(xb), xb, reduction="sum") / xb.shape[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        for i in range(0, n - batch_size + 1, batch_size):
            idx.copy_(perm[i : i + batch_size])
            graph.replay()
    _sync(device)
    return epochs * (n - n % batch_size) / (time.perf_counter() - t0)


HINTON_DIMS = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]


def gemm_flops_per_sample(dims: list[int] = HINTON_DIMS) -> int:
    """Floating-point operations per sample of :func:`gemm_ceiling`'s products: 2ab for the forward product and
    the weight gradient of every a -> b layer, and for the input gradient of every layer but the first."""
    layers = [a * b for a, b in zip(dims[:-1], dims[1:])]
    return 2 * (2 * sum(layers) + sum(layers[1:]))


def gemm_ceiling(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    """The matrix products of the training steps and nothing else; returns samples per second.

    Per layer and batch: the forward product and, backwards, the weight gradient and the input gradient (none for
    the first layer, whose input needs no gradient), on preallocated tensors of the network's shapes, with the same
    batches as an epoch (the last one short). No autograd, activations, loss, bias or optimizer: every fp32 step of
    this network on this BLAS does at least this work, so this rate bounds any loop's from above.
    """
    dims = HINTON_DIMS
    g = torch.Generator(device=device).manual_seed(0)
    ws = [torch.randn(b, a, generator=g, device=device) * a**-0.5 for a, b in zip(dims[:-1], dims[1:])]
    acts = [torch.randn(batch_size, d, generator=g, device=device) for d in dims]
    grads = [torch.randn(batch_size, d, generator=g, device=device) for d in dims]
    wgrads = [torch.empty_like(w) for w in ws]
    n = X.shape[0]
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, n, batch_size):
            b = min(batch_size, n - i)
            for k, w in enumerate(ws):
                torch.mm(acts[k][:b], w.t(), out=acts[k + 1][:b])
            for k in reversed(range(len(ws))):
                torch.mm(grads[k + 1][:b].t(), acts[k][:b], out=wgrads[k])
                if k > 0:
                    torch.mm(grads[k + 1][:b], ws[k], out=grads[k][:b])
    _sync(device)
    return epochs * n / (time.perf_counter() - t0)


# Torch threads each loop trained with, by loop name (aekit chooses its own; the others take torch's default).
THREADS: dict[str, int] = {}


def aekit_trainer(
    X: np.ndarray, epochs: int, batch_size: int, device: str, cuda_graph: bool = True, cpu_bf16: bool = False
) -> float:
    ae = aekit.Autoencoder.from_preset(
        "hinton", max_epochs=epochs, batch_size=batch_size, validation_fraction=0.0, patience=None,
        device=device, random_state=0, verbose=0, cuda_graph=cuda_graph, cpu_bf16=cpu_bf16,
    ).fit(X)
    rows = timed_epochs(ae.history_, device)
    if cpu_bf16 and not all(r.get("bf16") == 1.0 for r in rows):
        raise RuntimeError("cpu_bf16=True did not apply on this machine; run with --skip-bf16")
    THREADS["aekit"] = int(rows[0]["threads"])
    return statistics.median(r["samples_per_s"] for r in rows)


# pythae 0.1.2's trainer on the same network and loss; run in its own environment, prints samples/s.
PYTHAE_SCRIPT = textwrap.dedent('''
    import sys, time, json, tempfile
    import numpy as np, torch
    from torch import nn
    from pythae.models import AE, AEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.data.datasets import BaseDataset

    path, epochs, bs, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    X = np.load(path)

    def mlp(dims, last):
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            layers.append(nn.GELU() if i < len(dims) - 2 else last)
        return nn.Sequential(*layers)

    class Enc(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([784, 1000, 500, 250, 30], nn.Identity())
        def forward(self, x):
            return ModelOutput(embedding=self.net(x.reshape(x.shape[0], -1)))

    class Dec(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([30, 250, 500, 1000, 784], nn.Sigmoid())
        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(z.shape[0], 1, 28, 28))

    torch.manual_seed(0)
    cfg = AEConfig(input_dim=(1, 28, 28), latent_dim=30, reconstruction_loss="bce")
    model = AE(cfg, encoder=Enc(), decoder=Dec())
    out = tempfile.mkdtemp()
    tc = BaseTrainerConfig(output_dir=out, num_epochs=epochs, learning_rate=1e-3, per_device_train_batch_size=bs,
                           no_cuda=not device.startswith("cuda"), optimizer_cls="Adam")
    data = BaseDataset(torch.from_numpy(X), torch.zeros(len(X)))
    trainer = BaseTrainer(model=model, train_dataset=data, training_config=tc)
    t0 = time.perf_counter()
    trainer.train()
    print(json.dumps({"samples_per_s": epochs * len(X) / (time.perf_counter() - t0)}))
''')


def family_rows(X: np.ndarray, epochs: int, batch_size: int, device: str) -> list[list[object]]:
    """Seconds per epoch of the families with extra loss terms on the hinton layout, and the path their steps took."""
    common = {"hidden_dims": (1000, 500, 250), "latent_dim": 30, "activation": "gelu", "max_epochs": epochs,
              "batch_size": batch_size, "validation_fraction": 0.0, "patience": None, "device": device,
              "random_state": 0, "verbose": 0}
    families = [
        ("Autoencoder (plain)", lambda: aekit.Autoencoder(**common)),
        ("DenoisingAutoencoder, masking:0.25", lambda: aekit.DenoisingAutoencoder(corruption="masking:0.25", **common)),
        ("ContractiveAutoencoder, alpha 0.1", lambda: aekit.ContractiveAutoencoder(alpha=0.1, **common)),
        ("SparseAutoencoder, KL penalty", lambda: aekit.SparseAutoencoder(**common)),
        ("VAE, k=1", lambda: aekit.VAE(**common)),
        ("VAE, k=5 (IWAE)", lambda: aekit.VAE(k=5, **common)),
    ]
    rows: list[list[object]] = []
    base = None
    for name, make in families:
        model = make().fit(X)
        s = statistics.median(r["seconds"] for r in timed_epochs(model.history_, device))
        base = base or s
        rows.append([name, s, s / base, training_path(model.history_)])
    return rows


def pythae_status() -> str | None:
    """None when pythae 0.1.2 can run, else why not."""
    if not PYTHAE_PYTHON.is_file():
        return f"not installed: no {PYTHAE_PYTHON} (see this script's docstring)"
    probe = subprocess.run([str(PYTHAE_PYTHON), "-c", "import pythae.trainers, torch"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return "not installed: " + (probe.stderr.strip().splitlines() or ["import failed"])[-1]
    return None


def pythae_trainer(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", X)
        (Path(tmp) / "run.py").write_text(PYTHAE_SCRIPT)
        res = subprocess.run([str(PYTHAE_PYTHON), str(Path(tmp) / "run.py"), str(Path(tmp) / "x.npy"), str(epochs),
                              str(batch_size), device], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("pythae run failed: " + res.stderr.strip()[-2000:])
    return float(json.loads(res.stdout.strip().splitlines()[-1])["samples_per_s"])


# The whole-process reference: what a user writes to train one epoch and keep the weights.
SCRIPT = textwrap.dedent('''
    import gzip, sys
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    data_dir, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with gzip.open(data_dir + "/train-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    X = (X[:limit] if limit > 0 else X).astype(np.float32) / 255.0
    dims = [784, 1000, 500, 250, 30]
    layers = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers += [nn.Linear(a, b)] + ([nn.GELU()] if i < 3 else [])
    r = dims[::-1]
    for i, (a, b) in enumerate(zip(r[:-1], r[1:])):
        layers += [nn.Linear(a, b), nn.GELU() if i < 3 else nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Unflatten(1, (1, 28, 28)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for (xb,) in DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=128, shuffle=True):
        loss = F.binary_cross_entropy(model(xb), xb, reduction="sum") / xb.shape[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), out)
''')


def _timed(cmd: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return dt


def whole_process(data_dir: str, limit: int | None, repeats: int) -> tuple[list[float], list[float]]:
    """Wall seconds of the hand-written script and of ``aekit train``, alternated ``repeats`` times."""
    script_s, aekit_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train_by_hand.py"
        script.write_text(SCRIPT)
        for r in range(repeats):
            script_s.append(_timed([sys.executable, str(script), data_dir, str(limit or 0), str(Path(tmp) / "w.pt")]))
            run = Path(tmp) / f"run{r}"
            cmd = [sys.executable, "-m", "aekit.cli", "train", "--family", "autoencoder", "--preset", "hinton",
                   "--data", "mnist", "--data-dir", data_dir, "--epochs", "1", "--out", str(run), "--quiet"]
            aekit_s.append(_timed(cmd + (["--limit", str(limit)] if limit else [])))
            shutil.rmtree(run, ignore_errors=True)
    return script_s, aekit_s


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats of each loop (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="per-epoch rows: use only the first N training images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-pythae", action="store_true", help="leave out the pythae row")
    p.add_argument("--skip-process", action="store_true", help="leave out the whole-process measurement")
    p.add_argument("--skip-bf16", action="store_true", help="leave out the bf16-products rows on a CPU with bf16 units")
    p.add_argument("--process-repeats", type=int, default=2, help="alternating whole-process runs (default: %(default)s)")
    p.add_argument("--families", action="store_true",
                   help="also time the families with extra terms (denoising, contractive, sparse, VAE)")
    p.add_argument("--process-limit", type=int, default=None,
                   help="whole processes train on the first N images only (default: all 60,000)")
    args = p.parse_args()

    X = aekit.load_dataset(args.data, data_dir=args.data_dir, limit=args.limit).X
    loops: list[tuple[str, Callable[..., float]]] = [
        ("hand-written DataLoader loop", handwritten), ("tuned step (plain loop)", tuned), ("aekit trainer", aekit_trainer),
        ("matrix products alone (a bound, not a loop)", gemm_ceiling),
    ]
    if args.device.startswith("cuda"):
        loops.append(("aekit trainer, no CUDA graph", lambda *a: aekit_trainer(*a, cuda_graph=False)))
        loops.append(("hand-written CUDA-graph step", graph_step))
    if args.device == "cpu" and cpu_bf16_available() and not args.skip_bf16:
        loops.append(("hand-written DataLoader loop, bf16 products (torch's switch)", handwritten_bf16))
        loops.append(("aekit trainer, cpu_bf16=True (bf16 products)", lambda *a: aekit_trainer(*a, cpu_bf16=True)))
    pythae_why = "left out (--skip-pythae)" if args.skip_pythae else pythae_status()
    if pythae_why is None:
        loops.append(("pythae 0.1.2 trainer", pythae_trainer))
    epochs = args.epochs + (1 if args.device.startswith("cuda") else 0)
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, fn in loops:
            runs.setdefault(name, []).append(fn(X, epochs, args.batch_size, args.device))
    base = runs[loops[0][0]]
    rows: list[list[object]] = []
    for name, vals in runs.items():
        ratios = [v / b for v, b in zip(vals, base)]
        sps = statistics.median(vals)
        threads = THREADS.get("aekit", "-") if name.startswith("aekit") else torch.get_num_threads()
        rows.append([name, args.batch_size, threads, sps, len(X) / sps, statistics.median(ratios), _spread(ratios)])
    if pythae_why is not None:
        rows.append(["pythae 0.1.2 trainer", args.batch_size, "-", pythae_why, "-", "-", "-"])
    print(f"Per epoch: Hinton 784-1000-500-250-30, {len(X)} images, {args.device}, torch threads "
          f"{torch.get_num_threads()} ({machine()}); {args.repeats} alternating repeats, load before "
          f"{os.getloadavg()[0]:.1f}\n")
    print(table(["loop", "batch", "threads (last run)", "samples/s", "s/epoch", "vs hand-written (median)", "per-repeat range"], rows))
    bound = statistics.median(runs["matrix products alone (a bound, not a loop)"])
    gflops = bound * gemm_flops_per_sample() / 1e9
    print(f"\nThe matrix products alone ran at {gflops:.1f} GFLOP/s ({gflops / torch.get_num_threads():.1f} per thread "
          f"on {torch.get_num_threads()}); {gemm_flops_per_sample() / 1e6:.2f} MFLOP per sample and step.")

    if args.families:
        print(f"\nFamilies with extra terms, layout 784-1000-500-250-30 (GELU), {len(X)} images, batch "
              f"{args.batch_size}, {args.device}; median seconds per epoch of {epochs} epochs"
              + (" after the first (graph capture)" if args.device.startswith("cuda") else "") + "\n")
        print(table(["family", "s/epoch", "vs plain", "steps ran (run history)"],
                    family_rows(X, epochs + (1 if args.device.startswith("cuda") else 0), args.batch_size, args.device)))
    if args.skip_process or args.device != "cpu":
        return
    data_dir = args.data_dir or os.environ.get("AEKIT_DATA_DIR")
    if not data_dir:
        sys.exit("the whole-process measurement needs --data-dir (the MNIST IDX files)")
    load = os.getloadavg()[0]
    script_s, aekit_s = whole_process(data_dir, args.process_limit, args.process_repeats)
    ratios = [s / a for s, a in zip(script_s, aekit_s)]
    n = f"first {args.process_limit}" if args.process_limit else "all 60,000"
    print(f"\nWhole processes, one epoch on {n} MNIST training images; {args.process_repeats} alternating repeats, "
          f"load before {load:.1f}\n")
    print(table(["process", "wall s (median)", "speed vs hand-written script (median)", "per-repeat range"], [
        ["hand-written script: import torch, read IDX, 1 epoch, torch.save", statistics.median(script_s), 1.0, "-"],
        ["aekit train --preset hinton --epochs 1 (validation, metrics, report)", statistics.median(aekit_s),
         statistics.median(ratios), _spread(ratios)],
    ]))


if __name__ == "__main__":
    main()
