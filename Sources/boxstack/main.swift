import BoxstackCommands

await Boxstack.main()
