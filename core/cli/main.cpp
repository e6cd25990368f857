// duetd's entry point: parse the command line, then hand over to the C core.
#include <iostream>

#include "cli/bundled.hpp"
#include "cli/options.hpp"
#include "workers.h"

int main(int argc, char **argv) {
  duet::CliOptions options;
  int exit_code;
  {
    // The bundled plugins' descriptors are read for their flags and commands,
    // then let go: the server loads its plugins itself.
    duet::BundledPlugins bundled;
    exit_code = duet::parse_command_line(argc, argv, options, bundled.declarations(), std::cout, std::cerr);
  }
  if (exit_code >= 0)
    return exit_code;
  if (options.c.workers && !options.c.list_plugins)
    return duet_workers_run(&options.c, argc, argv);
  return duet_server_run(&options.c);
}
