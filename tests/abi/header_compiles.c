/* duet/plugin.h must compile alone, warning-free, as C11 and as C++17. */
#include <duet/plugin.h>

int duet_abi_header_check(void);
int duet_abi_header_check(void) { return (int)sizeof(duet_plugin_t) + (int)sizeof(duet_host_t); }
