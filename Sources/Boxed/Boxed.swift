// Boxed module
