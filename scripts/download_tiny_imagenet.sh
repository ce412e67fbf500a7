#!/usr/bin/env bash
# Fetch Tiny-ImageNet-200 (the paper's "ImageNet-200") in its official layout and verify it.
#   scripts/download_tiny_imagenet.sh [DEST]        (default DEST: data; the data set lands in DEST/tiny-imagenet-200)
# Then:  python train.py dataset=imagenet200 dataset.root=DEST   (or leave dataset.root unset when DEST is data_dir)
set -euo pipefail
DEST="${1:-data}"
URL="http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5="90528d7ca1a48142e341f4ef8d21d0de"
ZIP="$DEST/tiny-imagenet-200.zip"
mkdir -p "$DEST"
if [ -f "$DEST/tiny-imagenet-200/wnids.txt" ]; then
  echo "already there: $DEST/tiny-imagenet-200"
else
  if [ ! -f "$ZIP" ] || ! echo "$MD5  $ZIP" | md5sum -c --status; then
    echo "downloading $URL (about 237 MB) to $ZIP"
    if command -v curl >/dev/null; then curl -fL --retry 3 -o "$ZIP.part" "$URL"
    elif command -v wget >/dev/null; then wget -O "$ZIP.part" "$URL"
    else echo "error: neither curl nor wget is installed" >&2; exit 1; fi
    mv "$ZIP.part" "$ZIP"
  fi
  echo "$MD5  $ZIP" | md5sum -c - || { echo "error: $ZIP has the wrong MD5 (expected $MD5); delete it and retry" >&2; exit 1; }
  if command -v unzip >/dev/null; then unzip -q -o "$ZIP" -d "$DEST"
  else python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$ZIP" "$DEST"; fi
fi
T="$DEST/tiny-imagenet-200"
classes=$(grep -c . "$T/wnids.txt")
train=$(find "$T/train" -name '*.JPEG' | wc -l)
val=$(find "$T/val/images" -name '*.JPEG' | wc -l)
ann=$(grep -c . "$T/val/val_annotations.txt")
echo "$T: $classes classes, $train train images, $val val images, $ann val annotations"
if [ "$classes" -ne 200 ] || [ "$train" -ne 100000 ] || [ "$val" -ne 10000 ] || [ "$ann" -ne 10000 ]; then
  echo "error: expected 200 classes, 100000 train and 10000 annotated val images" >&2; exit 1
fi
echo "ok. The first run decodes the JPEGs once into $T/.scyc-cache/ (about 1.4 GB)."
