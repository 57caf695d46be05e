// batchbus — the command line (tools/cli.h; `batchbus --help`).
#include "cli.h"

int main(int argc, char** argv) { return batchbus::cli::Main(argc, argv); }
