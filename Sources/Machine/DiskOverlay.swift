import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Per-run qcow2 overlays over the read-only box disk.
public enum DiskOverlay {
    /// Creates `overlay` backed by `base` (absolute), so the guest's writes never reach the box disk.
    public static func create(base: String, at overlay: String) throws {
        guard base.hasPrefix("/") else {
            throw BoxstackError(.invalidArgument, "the box disk path \(base) must be absolute for a qcow2 backing file.")
        }
        guard FileManager.default.fileExists(atPath: base) else {
            throw BoxstackError(.notFound, "the box disk \(base) does not exist; fetch the box again.")
        }
        let result = try Subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay])
        guard result.status.isSuccess else {
            throw BoxstackError(
                .processFailed, "cannot create the disk overlay \(overlay) on \(base) (qemu-img: \(result.status)).",
                details: result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
