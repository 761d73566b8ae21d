export PATH=$PATH:/usr/local/cuda/bin PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
S="--section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis --section Occupancy --section InstructionStats"
p() { timeout 100 ncu --clock-control none --kernel-name regex:"$1" --launch-skip 2 --launch-count 1 $S python3 bench/experiments/gpu_profile.py $2 > $OUT/ncu_$3.txt 2>&1; }
p mma_attention "tileattn 8 16 4096 128" t4k
p mma_attention "tileattn 2 16 16384 128" t16k
p mma_attention "tileattn 8 16 4096 128 --causal" t4kc
p flash "torch 8 16 4096 128" f4k
p flash "torch 2 16 16384 128" f16k
p flash "torch 8 16 4096 128 --causal" f4kc
cd $OUT && grep -E "^    (Duration|Executed Instructions |Achieved Occupancy|Warp Cycles Per Issued|L2 Hit Rate|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput)" ncu_*.txt
