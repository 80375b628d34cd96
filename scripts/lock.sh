#!/usr/bin/env bash
# Regenerate the locks from pyproject.toml: requirements.txt (what production installs)
# and requirements-dev.txt (the test and lint tools, constrained to the same versions).
# Both carry hashes, so `pip install -r` refuses any file that differs from the one locked.
#
#   scripts/lock.sh            # keep the versions already locked where they still fit
#   scripts/lock.sh --upgrade  # take the newest versions that pyproject.toml allows
#
# Run it after any change to the dependencies in pyproject.toml (tests/unit/test_lock.py
# fails until you do). Needs Python 3.11 (the version in .python-version) and the package
# index only: machine-local wheel folders and extra indexes are switched off so that the
# hashes are those every platform downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
want="$(cat .python-version)"
have="$("$python" -c 'import platform; print(platform.python_version())')"
if [ "${want%.*}" != "${have%.*}" ]; then
  echo "lock.sh: needs Python ${want%.*} (.python-version), found $have; set PYTHON=" >&2
  exit 2
fi

tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
# The index only: no local wheel folder, no extra index, no local constraints.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_INDEX_URL || true
"$python" -m venv "$tools"
"$tools/bin/pip" install --quiet --upgrade "pip==26.3" "pip-tools==7.7.0"

compile=("$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe
         --no-emit-index-url --no-emit-find-links --resolver=backtracking "$@")
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "${compile[@]}" \
  --output-file requirements.txt pyproject.toml
# The dev tools on top of exactly the production versions.
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "${compile[@]}" --extra dev \
  --constraint requirements.txt --output-file requirements-dev.txt pyproject.toml
echo "lock.sh: requirements.txt and requirements-dev.txt written" >&2
