//! TFTP server over the current generation (async-tftp).
