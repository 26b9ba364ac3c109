#!/usr/bin/env bash
# Prepares .whl/ (git-ignored through .git/info/exclude) for check.sh on a lent GPU
# machine (Python 3.12, torch 2.11 + CUDA, numpy 2.x, no network): the cp312 wheels
# of what `ceal bench mc` and `ceal bench detection` import and that image lacks
# (~45 MB; the device's own packages are listed in /work/.library/device/KINDS.md),
# the mmcv 2.1.0 sdist (check.sh compiles its CPU ops there in about a minute) and
# setuptools<80 for that build. Run from the repository root:
#   bash .ci/device/wheels.sh && <device run> "bash .ci/device/check.sh" carrying .whl
set -euo pipefail
mkdir -p .whl .git/info
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
plat="--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any"
pip=${PIP:-.venv/bin/pip}
# shellcheck disable=SC2086
$pip download --no-deps --only-binary=:all: $plat -d .whl \
  addict==2.4.0 alembic==1.20.1 annotated-types==0.8.0 antlr4-python3-runtime==4.13.2 cachetools==8.0.2 \
  coloredlogs==14.0 dagster==1.13.27 dagster-pipes==1.13.27 dagster-shared==1.13.27 descartes==1.1.0 \
  docstring_parser==0.18.0 duckdb==2.0.1 fire==0.7.1 grpcio-health-checking==1.81.1 humanfriendly==10.0 \
  laspy==2.7.0 lazrs==0.8.2 lyft-dataset-sdk==0.0.8 mako==1.4.3 mmdet==3.2.0 mmdet3d==1.4.0 mmengine==0.10.7 \
  nuscenes-devkit==1.2.0 pathlib_abc==0.5.2 platformdirs==4.14.9 plyfile==1.1.3 pycocotools==2.0.11 \
  pydantic==2.14.4 pydantic_core==2.50.5 pyquaternion==0.9.9 python-dotenv==1.2.4 pytz==2026.6 shapely==2.0.7 \
  sqlalchemy==2.1.9 structlog==26.1.0 termcolor==3.3.0 terminaltables==3.1.10 tomli==2.5.0 toposort==1.10 \
  trimesh==5.2.0 typing-inspection==0.4.5 tzdata==2026.6 universal_pathlib==0.3.11 watchdog==6.0.0 yapf==0.43.0 \
  setuptools==79.0.1
# pip cannot download an sdist whose metadata needs torch to build: take it from PyPI's files.
url=$(curl -fsS https://pypi.org/simple/mmcv/ | grep -o 'https://files.pythonhosted.org/[^"#]*mmcv-2.1.0.tar.gz' | head -1)
curl -fsSL -o .whl/mmcv-2.1.0.tar.gz "$url"
echo "$(du -sh .whl | cut -f1) in .whl"
