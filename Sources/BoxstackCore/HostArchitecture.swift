import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// This machine's architecture as the kernel names it (`uname -m`: `x86_64`, `aarch64`, `s390x`,
/// `ppc64le`), with Darwin's `arm64` written `aarch64`: the names the box catalog uses.
public let hostArchitecture: String = {
    var name = utsname()
    uname(&name)
    let machine = withUnsafeBytes(of: &name.machine) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
    return machine == "arm64" ? "aarch64" : machine
}()
