#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md ("On one H100"), one after another, each under a time limit so
# that one slow step cannot take the others' time; every table also goes to $LOG_DIR. Run from the
# repository root on a machine with CUDA:
#
#     bash benchmarks/gpu_figures.sh ../shared/data/mnist [LOG_DIR]
#
# Set STEPS to run only some of them, e.g. STEPS="vae hinton".
set -u
DATA=${1:?usage: bash benchmarks/gpu_figures.sh MNIST_DIR [LOG_DIR]}
LOG_DIR=${2:-gpu-figures}
STEPS=${STEPS:-"tests throughput vae hinton scaling sparse iwae features"}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-src}
PY=${PYTHON:-python3}
start=$(date +%s)

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s; $(( $(date +%s) - start )) s since the start)"
    timeout "$limit" "$@" 2>&1 | tee "$LOG_DIR/$name.txt"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && echo "== $name reached its ${limit} s limit"
}

for s in $STEPS; do
    case $s in
    tests)  # the CUDA paths of the training loop (CUDA graph, TF32, the loop's AdamW) before any figure
        if $PY -c "import pytest" 2>/dev/null; then
            step tests 300 $PY -m pytest -q -p no:cacheprovider -o addopts="" tests/test_engine.py tests/test_optim.py
        else
            echo "== tests skipped: pytest is not installed for $PY"
        fi ;;
    throughput)
        step throughput-128 200 $PY benchmarks/bench_throughput.py --data-dir "$DATA" --device cuda --batch-size 128 --repeats 3 --skip-pythae --families
        step throughput-256 80 $PY benchmarks/bench_throughput.py --data-dir "$DATA" --device cuda --batch-size 256 --repeats 3 --skip-pythae
        step throughput-1024 60 $PY benchmarks/bench_throughput.py --data-dir "$DATA" --device cuda --batch-size 1024 --repeats 3 --skip-pythae ;;
    vae)  # below 86.76 nats within 300 s of training (issue 8)
        step vae 480 $PY benchmarks/bench_vae_nll.py --data-dir "$DATA" --ks 1 --epochs 5800 --batch-size 500 --lr 2e-3 --device cuda ;;
    hinton)  # below 3.00 within 60 s (issue 9, section 6)
        step hinton 120 $PY benchmarks/bench_mnist_reconstruction.py --data-dir "$DATA" --only hinton,lecture-conv --device cuda ;;
    scaling)
        step scaling-data 150 $PY benchmarks/bench_scaling.py --device cuda --sizes 1000 10000 100000 1000000 --widths 256
        step scaling-model 150 $PY benchmarks/bench_scaling.py --device cuda --sizes 5000 --widths 256 512 1024 2048 4096 ;;
    sparse)
        step sparse 300 $PY benchmarks/bench_sparse_coding.py --part speed --device cuda --data-dir "$DATA" ;;
    iwae)  # below 84.78 nats (issue 8)
        step iwae 600 $PY benchmarks/bench_vae_nll.py --data-dir "$DATA" --ks 50 --iwae-epochs 1000 --iwae-batch-size 500 --iwae-lr 2e-3 --device cuda ;;
    features)  # the budgets that bring the fine-tuned stacks to their anchors, on the GPU (issue 11)
        step features-sda 600 $PY benchmarks/bench_features.py --data-dir "$DATA" --only sda --pretrain-epochs 10 --epochs 50 --ft-schedule cosine --ft-dropout 0.5 --ft-input-dropout 0.2 --device cuda
        step features-cae 600 $PY benchmarks/bench_features.py --data-dir "$DATA" --only cae --pretrain-epochs 10 --epochs 200 --lr 3e-3 --ft-schedule cosine --ft-dropout 0.5 --ft-input-dropout 0.2 --device cuda ;;
    *) echo "unknown step '$s'; steps: tests throughput vae hinton scaling sparse iwae features" >&2; exit 2 ;;
    esac
done
echo "== done in $(( $(date +%s) - start )) s; tables in $LOG_DIR/"
