// OCI module
