// Package sockdiag reads the kernel's TCP socket tables through
// NETLINK_SOCK_DIAG, as ss does, and closes sockets through its
// SOCK_DESTROY request, as ss -K does. The kernel filters a dump by state
// and local port; a socket is handed to the caller as the raw
// inet_diag_msg, read only for the fields asked for, so that counting
// 100,000 sockets allocates nothing per socket.
package sockdiag
