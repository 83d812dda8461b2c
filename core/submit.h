/*
 * imgnodectl submit: batch work against a running node's HTTP API
 * (submit.c).
 */
#ifndef IMGNODE_SUBMIT_H
#define IMGNODE_SUBMIT_H

#include <stdbool.h>

/*
 * Runs `imgnodectl submit` with its own arguments (argv[0] is "submit").
 * config names the config whose [ingress] gives the default URL (read only
 * if explicit); json_out is imgnodectl's global --json. Returns the exit
 * status: 0 all done (or skipped), 1 some failed, 100 usage error, 111 the
 * node could not be reached.
 */
int ctl_submit(int argc, char **argv, const char *config, bool explicit,
               bool json_out);

#endif
