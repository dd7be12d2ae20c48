// Kiwi module
