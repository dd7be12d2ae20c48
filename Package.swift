// swift-tools-version:6.0
import PackageDescription

// One library per responsibility; leaf modules never import upward (see README, "Layout").
let package = Package(
    name: "boxstack",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "boxstack", targets: ["boxstack"]),
        .library(name: "Boxes", targets: ["Boxes"]),
        .library(name: "Stash", targets: ["Stash"]),
        .library(name: "Boxed", targets: ["Boxed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.60.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.25.0"),
    ],
    targets: [
        // C libraries, found with pkg-config.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "CLibArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CLibSSH", pkgConfig: "libssh", providers: [.apt(["libssh-dev"])]),
        .systemLibrary(name: "CLibDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
        // libc interfaces Swift's Glibc module leaves out (extended attributes).
        .systemLibrary(name: "CLibC"),

        // Errors, processes, paths, locks, digests, progress: what every other module uses.
        .target(
            name: "BoxstackCore",
            dependencies: [
                "CLibC",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // libxml2 documents: parse, XPath, build, serialize, RELAX NG validation.
        .target(name: "XML", dependencies: ["BoxstackCore", "CLibXML2"]),
        // OCI image-spec model and the image-layout directory.
        .target(name: "OCI", dependencies: ["BoxstackCore"]),
        // OCI distribution API client.
        .target(
            name: "Registry",
            dependencies: [
                "BoxstackCore", "OCI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // Stash store, layer writer/reader, tree diff with whiteouts, safe stacking.
        .target(
            name: "Stash",
            dependencies: [
                "BoxstackCore", "OCI", "Registry", "CLibArchive", "CLibC", "CLibDeflate",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // Box catalog, sources, verified download, cache.
        .target(
            name: "Boxes",
            dependencies: [
                "BoxstackCore", "OCI", "Registry",
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // KIWI descriptions (libxml2), schema validation, build-argument validation.
        .target(name: "Kiwi", dependencies: ["BoxstackCore", "XML"]),
        // libvirt domains: XML, overlays, accelerator choice, lifecycle.
        .target(name: "Machine", dependencies: ["BoxstackCore", "XML", "CLibvirt"]),
        // libssh sessions, exec channels, the guest-agent protocol.
        .target(name: "Guest", dependencies: ["BoxstackCore", "CLibSSH"]),
        // 9p, virtiofs and sshfs: host side and guest mount spec.
        .target(name: "Sharing", dependencies: ["BoxstackCore", "Machine"]),
        // One boxed run, end to end.
        .target(name: "Boxed", dependencies: ["BoxstackCore", "CLibC", "Kiwi", "Machine", "Guest", "Sharing", "Stash", "OCI", "Registry"]),
        // Boxes built from their KIWI descriptions in a builder box, published and cached.
        .target(name: "BoxBuilding", dependencies: ["BoxstackCore", "Boxes", "Boxed", "Kiwi"]),
        // The ArgumentParser verbs.
        .target(
            name: "BoxstackCommands",
            dependencies: [
                "BoxstackCore", "Boxes", "Kiwi", "Stash", "Registry", "Boxed", "BoxBuilding", "Machine", "Guest", "Sharing", "OCI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ], resources: []),
        .executableTarget(name: "boxstack", dependencies: ["BoxstackCommands"]),

        .testTarget(name: "BoxstackCoreTests", dependencies: ["BoxstackCore"]),
        .testTarget(name: "XMLTests", dependencies: ["XML", "TestSupport"]),
        .testTarget(name: "OCITests", dependencies: ["OCI", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "SharingTests", dependencies: ["Sharing", "Machine", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "BoxBuildingTests", dependencies: ["BoxBuilding", "Boxes", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "BoxesTests", dependencies: ["Boxes", "Registry", "OCI", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "StashTests", dependencies: ["Stash", "OCI", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "OCI", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "KiwiTests", dependencies: ["Kiwi", "XML", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "MachineTests", dependencies: ["Machine", "Sharing", "BoxstackCore", "TestSupport"], exclude: ["Golden"]),
        .testTarget(name: "GuestTests", dependencies: ["Guest", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "BoxedTests", dependencies: ["Boxed", "Guest", "Kiwi", "Machine", "Stash", "BoxstackCore", "TestSupport"]),
        .testTarget(name: "CommandsTests", dependencies: ["BoxstackCore", "TestSupport"]),
        // Needs the built box and libvirt; Scripts/test runs it as a non-root user.
        .testTarget(name: "VMTests", dependencies: ["Boxed", "Machine", "Guest", "Sharing", "BoxstackCore", "TestSupport"]),
        // Fixtures the tests share: temporary directories, real servers started on 127.0.0.1, repo paths.
        .target(name: "TestSupport", dependencies: ["BoxstackCore", "OCI"], path: "Tests/TestSupport"),
    ],
    swiftLanguageModes: [.v6]
)
