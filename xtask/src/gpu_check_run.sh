#!/usr/bin/env bash
# The device check's one prepared script, staged by `cargo xtask gpu-check` (xtask/src/gpu_check.rs
# fills in the weight assembly): bash run.sh STAGE OUT, run from the repository root.
# Every step has its own time limit, so a hang in one leaves the others' numbers; everything it
# measures ends in OUT (gpu_check.json, torch-*.json, run.log). To try it on a CPU (a `--cpu`
# staging): GPU_CHECK_ARGS=--quick TORCH_DEVICE=cpu bash run.sh STAGE OUT.
set -u
G=${1:?stage folder}
OUT=${2:?output folder}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
t_start=$(date +%s)
since() { echo "[$(($(date +%s) - t_start)) s] $*"; }

since "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
echo "cpus $(nproc)"

since "unpack"
gunzip -f "$G/gpu_check.gz" "$G"/data/*.gz && chmod +x "$G/gpu_check" || exit 1
@ASSEMBLE@
# burn's CUDA backend loads the driver and NVRTC at run time; say which NVRTC it can find
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
nvrtc_py=$(python3 -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$nvrtc_py" ] && [ -d "$nvrtc_py" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$nvrtc_py"
(ldconfig -p | grep -E 'libnvrtc|libcuda\.so'; ls $(echo "${LD_LIBRARY_PATH:-}" | tr : ' ') 2>/dev/null | grep -E '^libnvrtc') | sort -u | head -8

since "gpu_check"
timeout 420 "$G/gpu_check" "$G/root" "$G/fixtures" "$OUT" \
    --train "$G/data/train.npz" --work "$G/work" \
    --smoke-train "$G/data/smoke-train.npz" --smoke-test "$G/data/smoke-test.npz" \
    ${GPU_CHECK_ARGS:-} > "$OUT/gpu_check.stdout"
echo "gpu_check exit $?"

since "torch (same device, same weights, same shapes)"
python3 - <<'EOF' || true
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
python3 -c 'import numpy as np; np.save("/tmp/imgs.npy", np.random.default_rng(1).integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8))' || true
for b in 250 1000; do
    timeout 90 python3 crates/mr-embed/bench/torch_embed_bench.py --images /tmp/imgs.npy \
        --inception "$G/root/weights/inception-fid/default_1.pt" --device "${TORCH_DEVICE:-cuda}" --batch $b --repeats 3 \
        > "$OUT/torch-embed-b$b.json" || echo "torch embed batch $b failed"
    cat "$OUT/torch-embed-b$b.json"
done
timeout 120 python3 crates/mr-models/bench/torch_step.py --device "${TORCH_DEVICE:-cuda}" --model dcgan-small --model biggan \
    --batch 64 --d-steps 5 --warmup 2 --iters 10 > "$OUT/torch-step.json" || echo "torch step failed"
cat "$OUT/torch-step.json"
since "done"
