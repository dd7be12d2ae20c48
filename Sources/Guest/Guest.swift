// Guest module
