#!/usr/bin/env bash
# What a lent GPU machine runs (the device tool; see bench/RESULTS.md, "GPU"): the CUDA tests and the CUDA
# benchmark, logs under $OUT. Installs a wheel carried in .whl/ (built here for the machine's Python with
# -Ccmake.define.TILEATTN_CUDA=ON), else builds the checkout there without build isolation.
#
#     bash bench/gpu_run.sh [tests] [bench] [cpu] [profile] [extra pytest args...]
#
# cpu: the CPU test suite (all but the CUDA and linking tests) on the host's cores, whose AMX the
# development machine hides: 8 pytest-xdist workers of 2 threads (serially it outgrew one call's limit;
# 340 s this way in the twenty-eighth session). A build already installed by an earlier call on the same
# (warm) machine is reused.
#
# profile: ncu's main sections for one call of tileattn and of torch SDPA (flash), and our kernel's SASS
# with executed counts per instruction.
set -uo pipefail
OUT=${OUT:-/tmp/tileattn-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
steps=()
while [ $# -gt 0 ] && { [ "$1" = tests ] || [ "$1" = bench ] || [ "$1" = cpu ] || [ "$1" = profile ]; }; do
  steps+=("$1")
  shift
done
[ ${#steps[@]} -eq 0 ] && steps=(tests bench)

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv | tee "$OUT/gpu.txt"
if compgen -G ".whl/tileattn-*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/tileattn-*.whl || exit 1
  export PYTHONPATH=/tmp/site
elif ! python3 -c "import tileattn, sys; sys.exit(not tileattn.show_config(as_dict=True)['cuda']['built'])" 2>/dev/null; then
  python3 -m pip install -q --no-build-isolation --no-deps . -Ccmake.define.TILEATTN_CUDA=ON \
    -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90-real -Cbuild.tool-args=-j16 || exit 1
fi
python3 -c "import tileattn; tileattn.show_config()" 2>&1 | tee "$OUT/config.txt"

for step in "${steps[@]}"; do
  case $step in
    tests)
      timeout 300 python3 -m pytest tests/test_cuda.py -v -p no:cacheprovider -k "not build_compiles" \
        --timeout 120 "$@" 2>&1 | tee "$OUT/test_cuda.log" | grep -E "PASS|FAIL|ERROR|SKIP|passed|failed" | tail -40
      ;;
    cpu)
      TILEATTN_NUM_THREADS=${TILEATTN_NUM_THREADS:-2} timeout 570 python3 -m pytest tests -q -n 8 \
        -p no:benchmark -p no:cacheprovider --ignore tests/test_cuda.py --ignore tests/test_linking.py \
        --timeout 500 "$@" 2>&1 | tee "$OUT/test_cpu.log" | tail -15
      ;;
    bench)
      timeout 240 python3 bench/bench_cuda.py --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.log"
      ;;
    profile)
      export PATH=$PATH:/usr/local/cuda/bin
      sections=(--section SpeedOfLight --section Occupancy --section LaunchStats --section SchedulerStats
        --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis
        --section MemoryWorkloadAnalysis --section SourceCounters)
      timeout 200 ncu --clock-control none --kernel-name regex:mma_attention --launch-skip 2 --launch-count 1 \
        "${sections[@]}" -f -o /tmp/tileattn python3 bench/experiments/gpu_profile.py tileattn >/dev/null 2>&1
      ncu -i /tmp/tileattn.ncu-rep --page details >"$OUT/ncu_tileattn.txt" 2>&1
      # Per SASS instruction: executed counts and stall samples (the hot loop's instruction mix).
      ncu -i /tmp/tileattn.ncu-rep --page source --csv --print-source sass >"$OUT/ncu_tileattn_sass.csv" 2>&1
      timeout 200 ncu --clock-control none --kernel-name regex:flash --launch-skip 2 --launch-count 1 \
        "${sections[@]}" python3 bench/experiments/gpu_profile.py torch >"$OUT/ncu_torch.txt" 2>&1
      grep -E "Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Issued Ipc|No Eligible" \
        "$OUT/ncu_tileattn.txt" "$OUT/ncu_torch.txt"
      ;;
  esac
done

