// Sharing module
