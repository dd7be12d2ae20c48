#include <libssh/libssh.h>
#include <libssh/callbacks.h>
#include <libssh/sftp.h>
/* ssh_send_keepalive (keepalive@openssh.com with a reply) is declared here, though clients use it too. */
#include <libssh/server.h>
