import BoxstackCommands

@main
struct Entrypoint {
    static func main() async {
        await Boxstack.main(nil)
    }
}
