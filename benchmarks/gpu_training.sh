#!/usr/bin/env bash
# Prepared GPU run (issue 15): in under 8 minutes on one GPU, make a small corpus, build both caches,
# train NeuroRefocusNet and NeuroMergeNet for each modality for a fixed number of epochs, and print
# samples/s and the evaluation table. Every size is an environment variable, so the slow test runs the
# same script on the CPU with tiny settings:
#   bash benchmarks/gpu_training.sh                  # defaults below: 288 px, 256 px crops, the paper's width
#   OUT=runs/gpu SCENES=8 EPOCHS=1 bash benchmarks/gpu_training.sh
# Figures land in $OUT/summary.md (and on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
OUT=${OUT:-runs/gpu-training}
SCENES=${SCENES:-24}            # training scenes
TEST_SCENES=${TEST_SCENES:-4}
SIZE=${SIZE:-288}               # frame side (px)
FRAMES=${FRAMES:-96}
CROP=${CROP:-256}
WIDTH=${WIDTH:-1.0}             # 1.0 = the paper's networks
EPOCHS=${EPOCHS:-3}
SAMPLES=${SAMPLES:-16}          # refocus samples per scene per epoch (merge: a quarter)
BATCH=${BATCH:-8}
STACK=${STACK:-8}
WORKERS=${WORKERS:-$(nproc)}    # render and data-loading processes
PERCEPTUAL=${PERCEPTUAL:-vgg16}
DEVICE=${DEVICE:-auto}
EXTRA_SET=${EXTRA_SET:-}        # more recipe overrides, e.g. "--set render.samples=1"

nfs() { "$PY" -m nfs_synth.cli "$@"; }
started=$(date +%s)
mkdir -p "$OUT"
common_set=(--set camera.width="$SIZE" --set camera.height="$SIZE" --set sweep.frames="$FRAMES")
# shellcheck disable=SC2206
extra=($EXTRA_SET)

"$PY" generate.py recipes/quick.toml --out "$OUT/train" --workers "$WORKERS" --no-progress "${common_set[@]}" \
    --set corpus.scenes="$SCENES" --set corpus.seed=808 --set corpus.splits.train=1 --set corpus.splits.val=0 \
    --set corpus.splits.test=0 "${extra[@]}"
"$PY" generate.py recipes/quick.toml --out "$OUT/test" --workers "$WORKERS" --no-progress "${common_set[@]}" \
    --set corpus.scenes="$TEST_SCENES" --set corpus.seed=2024 --set corpus.splits.train=0 --set corpus.splits.val=0 \
    --set corpus.splits.test=1 "${extra[@]}"
corpus_done=$(date +%s)

train_args=(--corpus "$OUT/train" --epochs "$EPOCHS" --crop "$CROP" --width-mult "$WIDTH" --batch-size "$BATCH"
            --perceptual "$PERCEPTUAL" --perceptual-weight 0.05 --workers "$WORKERS" --device "$DEVICE")
for modality in events spikes; do
    short=${modality:0:2}
    nfs prepare --corpus "$OUT/train" --modality "$modality" --out "$OUT/cache-$short" --workers "$WORKERS" --no-progress
    nfs train --stage refocus --modality "$modality" --out "$OUT/refocus-$short" --cache "$OUT/cache-$short" \
        --samples-per-scene "$SAMPLES" "${train_args[@]}"
    nfs train --stage merge --modality "$modality" --out "$OUT/merge-$short" --cache "$OUT/cache-$short" \
        --samples-per-scene "$(( SAMPLES / 4 > 0 ? SAMPLES / 4 : 1 ))" --stack-size "$STACK" \
        --refocus-checkpoint "$OUT/refocus-$short/last.pt" "${train_args[@]}"
done
trained=$(date +%s)

nfs evaluate "$OUT/test" --split test --out "$OUT/eval" --no-figures \
    --methods input,handcraft-ev,uniform-ev,learned-ev,handcraft-sp,learned-sp,stack-laplacian \
    --option "checkpoints_ev=$OUT/refocus-ev/last.pt;$OUT/merge-ev/last.pt" \
    --option "checkpoints_sp=$OUT/refocus-sp/last.pt;$OUT/merge-sp/last.pt"
done_at=$(date +%s)

{
    echo "# GPU training run: $SCENES training scenes of ${SIZE}x${SIZE}, $FRAMES frames; crop $CROP, width $WIDTH, batch $BATCH, $EPOCHS epochs"
    "$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', '| torch', torch.__version__)"
    echo "wall: corpora $((corpus_done - started)) s, caches + training $((trained - corpus_done)) s, evaluation $((done_at - trained)) s, total $((done_at - started)) s"
    echo
    echo "| run | epochs | samples | seconds | samples/s (last epoch) | training PSNR (last epoch) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for run in refocus-ev merge-ev refocus-sp merge-sp; do
        "$PY" - "$OUT/$run/log.csv" "$run" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last = rows[-1]
print(f"| {sys.argv[2]} | {len(rows)} | {sum(int(r['samples']) for r in rows)} | "
      f"{sum(float(r['seconds']) for r in rows):.1f} | {last['samples_per_s']} | {last['psnr_db']} |")
EOF
    done
    echo
    cat "$OUT/eval/table.md"
} | tee "$OUT/summary.md"
