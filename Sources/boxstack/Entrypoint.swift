import BoxstackCommands

@main
struct Entrypoint {
    static func main() async {
        Boxstack.takeOverSignals()
        await Boxstack.main(nil)
    }
}
