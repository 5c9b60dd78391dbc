//! DHCP: recognition, the pure reply function, leases and the socket server.
