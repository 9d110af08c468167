#!/bin/bash
# Do the compiled dependencies have wheels for the platforms we do not test on?
#
#   tools/platform_wheels.sh [VENV]   (default .venv; needs the package registry)
#
# For every installed distribution whose wheel is platform-specific (not py3-none-any),
# asks pip for a wheel of the same version for macOS arm64 and Linux aarch64 (manylinux,
# glibc >= 2.17) on Python 3.11, 3.12 and 3.13, downloading nothing it does not need.
# Prints one line per distribution, platform and Python: the version found, or NONE.
set -u
venv=${1:-.venv}
mac=$(for v in 11 12 13 14 15; do printf -- "--platform macosx_%s_0_arm64 " $v; done)
mac+=$(for v in 10_9 10_13 11_0 12_0 13_0 14_0; do printf -- "--platform macosx_%s_universal2 " $v; done)
linux=$(for v in $(seq 17 39); do printf -- "--platform manylinux_2_%s_aarch64 " $v; done)
linux+="--platform manylinux2014_aarch64"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for wheel in "$venv"/lib/python3*/site-packages/*.dist-info/WHEEL; do
  tag=$(grep -m1 '^Tag:' "$wheel" | awk '{print $2}')
  case $tag in *-none-any) continue ;; esac
  dist=$(basename "$(dirname "$wheel")" .dist-info)
  name=${dist%-*} version=${dist##*-}
  for platform in macos_arm64 linux_aarch64; do
    [ $platform = macos_arm64 ] && flags=$mac || flags=$linux
    for python in 3.11 3.12 3.13; do
      # shellcheck disable=SC2086
      if "$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: $flags \
          --python-version $python -d "$scratch" "$name==$version" >/dev/null 2>&1; then
        echo "$name $platform py$python $version"
      else
        echo "$name $platform py$python NONE"
      fi
    done
  done
done
