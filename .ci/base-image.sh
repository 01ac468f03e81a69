#!/usr/bin/env bash
# Build the Python base image for serving images, once, and push it to the local registry.
# Docker Hub is out of reach here: the image is a Debian bookworm minbase from debootstrap,
# with an empty venv at /opt/venv on PATH (its Python is Debian's 3.11). The venv has no pip:
# images install into it with Debian's pip (`--python`), so no pip is left in served images.
# Usage: .ci/base-image.sh [IMAGE]   (default 127.0.0.1:5000/mlops/python:3.11-bookworm)
set -euo pipefail
image=${1:-127.0.0.1:5000/mlops/python:3.11-bookworm}
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image is present"
  docker push -q "$image" >/dev/null
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root/fs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
chroot "$root/fs" python3 -m venv --without-pip /opt/venv
# Smaller image: no docs, translations, caches or apt lists.
rm -rf "$root"/fs/usr/share/doc/* "$root"/fs/usr/share/man/* "$root"/fs/usr/share/info/* \
  "$root"/fs/usr/share/locale/* "$root"/fs/usr/share/i18n/* "$root"/fs/usr/share/lintian/* \
  "$root"/fs/var/lib/apt/lists/* "$root"/fs/var/cache/apt/* "$root"/fs/var/cache/debconf/*-old
tar -C "$root/fs" -c . | docker import \
  --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1' \
  --change 'CMD ["python3"]' - "$image" >/dev/null
docker push -q "$image" >/dev/null
echo "built and pushed base image $image"
