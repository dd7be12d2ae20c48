#include <libssh/libssh.h>
#include <libssh/callbacks.h>
#include <libssh/sftp.h>
