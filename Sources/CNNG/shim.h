// Debian's libnng-dev ships no pkg-config file; the headers live in /usr/include/nng.
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/util/platform.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>
