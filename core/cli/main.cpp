// duetd's entry point: parse the command line, then hand over to the C core.
#include <iostream>

#include "cli/options.hpp"

int main(int argc, char **argv) {
  duet::CliOptions options;
  int exit_code = duet::parse_command_line(argc, argv, options, std::cout, std::cerr);
  if (exit_code >= 0)
    return exit_code;
  return duet_server_run(&options.c);
}
