import ArgumentParser

/// The options of every verb that talks to a registry.
struct RegistryOptions: ParsableArguments {
    @Option(
        name: .customLong("tls-verify"),
        help: ArgumentHelp(
            "Verify the registry's TLS certificate (127.0.0.1 and localhost use plain HTTP).", valueName: "bool"))
    var tlsVerify = true
}
