#!/usr/bin/env bash
# tests/install/run.sh <build-dir>
#
# Installs the batchbus build in <build-dir> into a temporary prefix, then
# configures, builds and runs tests/install (a consumer that only does
# find_package(batchbus) and links batchbus::batchbus). The temp dir is
# removed on exit unless BATCHBUS_KEEP_INSTALL_TEST=1.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$1/CMakeCache.txt" ]; then
  echo "usage: $0 <configured batchbus build dir>" >&2
  exit 2
fi
BUILD="$(cd "$1" && pwd)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/batchbus-install-test.XXXXXX")"
if [ "${BATCHBUS_KEEP_INSTALL_TEST:-0}" = "1" ]; then
  echo "install test: keeping $TMP"
else
  trap 'rm -rf "$TMP"' EXIT
fi

# Same compiler and build type as the library (a sanitizer build's flags
# must reach the consumer's link, too).
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt" | head -n 1; }
CXX_COMPILER="$(cache CMAKE_CXX_COMPILER)"
BUILD_TYPE="$(cache CMAKE_BUILD_TYPE)"
CXX_FLAGS="$(cache CMAKE_CXX_FLAGS)"
LINKER_FLAGS="$(cache CMAKE_EXE_LINKER_FLAGS)"
GENERATOR="$(cache CMAKE_GENERATOR)"

echo "install test: cmake --install $BUILD --prefix $TMP/prefix"
# Needs the library built (ctest runs after the build).
cmake --install "$BUILD" --prefix "$TMP/prefix" >"$TMP/install.log" 2>&1 || {
  cat "$TMP/install.log" >&2
  echo "install test: cmake --install failed" >&2
  exit 1
}

for f in lib/cmake/batchbus/batchbusConfig.cmake \
         lib/cmake/batchbus/batchbusConfigVersion.cmake \
         lib/cmake/batchbus/batchbusTargets.cmake \
         include/batchbus/batchbus.h; do
  if [ ! -f "$TMP/prefix/$f" ]; then
    echo "install test: $f is missing from the install tree" >&2
    exit 1
  fi
done

echo "install test: configuring tests/install against $TMP/prefix"
cmake -S "$HERE" -B "$TMP/build" ${GENERATOR:+-G "$GENERATOR"} \
  -DCMAKE_PREFIX_PATH="$TMP/prefix" \
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
  ${CXX_COMPILER:+-DCMAKE_CXX_COMPILER="$CXX_COMPILER"} \
  ${BUILD_TYPE:+-DCMAKE_BUILD_TYPE="$BUILD_TYPE"} \
  -DCMAKE_CXX_FLAGS="$CXX_FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="$LINKER_FLAGS" \
  >"$TMP/configure.log" 2>&1 || {
  cat "$TMP/configure.log" >&2
  echo "install test: configuring the consumer failed" >&2
  exit 1
}
# The consumer must have found the installed package, not the build tree.
found="$(sed -n 's/^batchbus_DIR:[A-Z]*=//p' "$TMP/build/CMakeCache.txt")"
case "$found" in
  "$TMP/prefix"/*) ;;
  *) echo "install test: find_package(batchbus) used '$found', not $TMP/prefix" >&2
     exit 1 ;;
esac

echo "install test: building the consumer"
cmake --build "$TMP/build" >"$TMP/build.log" 2>&1 || {
  cat "$TMP/build.log" >&2
  echo "install test: building the consumer failed" >&2
  exit 1
}

echo "install test: running the consumer"
"$TMP/build/consumer"
