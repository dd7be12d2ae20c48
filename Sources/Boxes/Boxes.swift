// Boxes module
