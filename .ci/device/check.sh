#!/usr/bin/env bash
# One prepared GPU check: install the carried wheels, build mmcv 2.1.0's CPU ops
# (16 cores; CUDA hidden so only the CPU kernels compile: the detector voxelizes on
# the CPU then and runs everything else on the GPU), then the benchmarks.
# Prepare .whl/ with .ci/device/wheels.sh, then on the device machine, from the
# repository root, carrying .whl:  DET_LIMIT=230 bash .ci/device/check.sh
# (about 8 minutes; results in $OUT: mc_*.json, detection.log, the benchmark's jsonl).
set -u
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
REPO=$PWD
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
stamp "start on $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader); $(nproc) cores; $(python3 --version)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || { stamp "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site
stamp "wheels installed"
cd /tmp && tar xzf $REPO/.whl/mmcv-2.1.0.tar.gz && cd mmcv-2.1.0 || exit 1
CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=16 python3 setup.py build_ext --inplace > $OUT/mmcv_build.log 2>&1 || { stamp "mmcv build failed"; tail -30 $OUT/mmcv_build.log; exit 1; }
export PYTHONPATH=/tmp/mmcv-2.1.0:/tmp/site:$REPO
cd $REPO
stamp "mmcv built"
python3 -c "import torch, numpy, mmcv, mmdet3d; from mmcv.ops import Voxelization; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'mmcv', mmcv.__version__, 'mmdet3d', mmdet3d.__version__)" || exit 1
export CEAL_HOME=/tmp/ceal_home
for cfg in bevfusion_lite bevfusion_tiny; do
  stamp "bench mc $cfg"
  timeout 150 python3 -m ceal_pipeline.cli bench mc --device cuda --config $cfg --frames 32 --batch-size 4 --json 2> $OUT/mc_$cfg.err | tee $OUT/mc_$cfg.json
  tail -3 $OUT/mc_$cfg.err
done
stamp "detection benchmark, gpu preset (seed 0; random + CEAL heatmap 5 %), until the limit"
timeout ${DET_LIMIT:-240} python3 -m ceal_pipeline.cli bench detection --preset gpu --seeds 0 --strategies random,ceal_heatmap_entropy_5pct --device cuda --results /tmp/ceal_home/validation > $OUT/detection.log 2>&1
echo "detection exit $?"
tail -40 $OUT/detection.log
cp /tmp/ceal_home/validation/*.jsonl $OUT/ 2>/dev/null
stamp "done"
