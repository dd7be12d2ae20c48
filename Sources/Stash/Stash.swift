// Stash module
