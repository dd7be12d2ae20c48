// Machine module
