// duetd's entry point: parse the command line, hand over to the C core, and
// turn what it returns into the exit code (exit_code.h lists them).
#include <iostream>

#include "cli/bundled.hpp"
#include "cli/options.hpp"
#include "exit_code.h"
#include "options.h"
#include "workers.h"

int main(int argc, char **argv) {
  duet_note_early_drain();
  duet::CliOptions options;
  duet::CliOutcome outcome;
  {
    // The bundled plugins' descriptors are read for their flags and commands,
    // then let go: the server loads its plugins itself.
    duet::BundledPlugins bundled;
    outcome = duet::parse_command_line(argc, argv, options, bundled.declarations(), std::cout, std::cerr);
  }
  if (!outcome.run)
    return outcome.exit_code;
  if (options.c.workers && !options.c.list_plugins)
    return duet_exit_code_of(duet_workers_run(&options.c, argc, argv));
  return duet_exit_code_of(duet_server_run(&options.c));
}
