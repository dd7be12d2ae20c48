import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Builds small root trees with every kind of entry a stash must keep, and compares trees entry by entry.
public enum TreeFixture {
    /// True when this process runs as root (owners and device nodes can then be tested).
    public static var isRoot: Bool { geteuid() == 0 }

    /// Runs a shell script with `root` (created when missing) as the working directory; throws on failure.
    /// An image made by umoci with two layers, the second deleting a directory tree and a file of an
    /// opaque-looking directory, so it carries whiteouts the way other tools write them.
    public static func makeUmociImageWithWhiteouts(layout: String, bundle: String) throws {
        let rootless = isRoot ? [] : ["--rootless"]
        try Subprocess.run(["umoci", "init", "--layout", layout]).check()
        try Subprocess.run(["umoci", "new", "--image", layout + ":latest"]).check()
        try Subprocess.run(["umoci", "unpack"] + rootless + ["--image", layout + ":latest", bundle]).check()
        try shell(
            "mkdir -p etc gone/deep opq && echo one > etc/a && echo two > gone/deep/f && echo o > opq/old && ln -s etc/a link",
            in: bundle + "/rootfs")
        try Subprocess.run(["umoci", "repack", "--image", layout + ":latest", bundle]).check()
        try shell("rm -r gone && echo three > etc/a && rm opq/old && echo n > opq/new", in: bundle + "/rootfs")
        try Subprocess.run(["umoci", "repack", "--image", layout + ":latest", bundle]).check()
    }

    public static func shell(_ script: String, in root: String) throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try Subprocess.run(["sh", "-euc", script], currentDirectory: root).check()
    }

    /// A tree with regular files, an empty file, nested directories, a read-only directory, setuid and
    /// sticky modes, relative and absolute symlinks, a dangling symlink, hard links, a FIFO, user xattrs
    /// (when the file system supports them), a KIWI description in `image/config.xml`, excluded
    /// top directories with content, and (as root) foreign owners and a device node.
    public static func makeSampleTree(at root: String, imageName: String = "sample-image") throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var script = """
            mkdir -p etc usr/bin usr/lib/deep/er var/empty image dev proc sys run tmp opt/ro
            printf 'hello\\n' > etc/hostname
            head -c 300000 /dev/urandom > usr/lib/blob.bin
            : > etc/empty
            printf '#!/bin/sh\\necho hi\\n' > usr/bin/tool && chmod 4755 usr/bin/tool
            printf 'deep' > usr/lib/deep/er/file.txt
            chmod 1777 tmp
            ln -s ../lib/blob.bin usr/bin/relative-link
            ln -s /etc/hostname usr/bin/absolute-link
            ln -s does/not/exist usr/bin/dangling
            ln usr/lib/blob.bin usr/lib/blob-hardlink.bin
            mkfifo var/fifo
            printf 'x' > opt/ro/file && chmod 0555 opt/ro
            printf 'console' > dev/console-file
            printf 'ignored' > proc/ignored run/ignored sys/ignored
            cat > image/config.xml <<'XML'
            <?xml version="1.0" encoding="utf-8"?>
            <image schemaversion="7.4" name="\(imageName)">
              <description type="system"><author>Test Author</author><contact>t@example.org</contact><specification>s</specification></description>
              <preferences><version>1.2.3</version><packagemanager>apt</packagemanager></preferences>
            </image>
            XML
            touch -h -d '2020-01-02 03:04:05.123456789' usr/bin/relative-link
            touch -d '2021-05-06 07:08:09.5' etc/hostname
            """
        if isRoot {
            script += """

                chown 1234:5678 etc/hostname
                chown -h 42:43 usr/bin/relative-link
                mknod dev/null-copy c 1 3 || true
                """
        }
        try shell(script, in: root)
        setUserXattr(root + "/etc/hostname", name: "user.boxstack.test", value: "value-1")
    }

    /// Sets a `user.*` xattr with setfattr when available; returns false when the file system refuses.
    @discardableResult
    public static func setUserXattr(_ path: String, name: String, value: String) -> Bool {
        guard Subprocess.which("setfattr") != nil else { return false }
        return (try? Subprocess.run(["setfattr", "-n", name, "-v", value, path]).status.isSuccess) ?? false
    }

    /// One line per entry below `root` (the root itself left out): type, mode, owner (when `owners`),
    /// size, mtime in ns (when `times`; of directories and symlinks only when `directoryTimes` and
    /// `symlinkTimes`), link target, device number, user xattrs and
    /// hard-link group. `dev`, `proc`, `sys` and `run` contribute only themselves unless `excludeSystemContent` is false.
    public static func snapshot(
        _ root: String, owners: Bool = isRoot, times: Bool = true, directoryTimes: Bool = true, symlinkTimes: Bool = true,
        excludeSystemContent: Bool = true
    ) throws -> [String: String] {
        let script = #"""
            import os, stat, sys, json
            root, owners, dirtimes, linktimes, exclude, times = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4] == "1", sys.argv[5] == "1", sys.argv[6] == "1"
            result, inodes = {}, {}
            for top, dirs, files in os.walk(root):
                rel_top = os.path.relpath(top, root)
                if exclude and rel_top in ("dev", "proc", "sys", "run"):
                    dirs[:] = []; files[:] = []
                    continue
                dirs.sort(); files.sort()
                for name in dirs + files:
                    path = os.path.join(top, name); rel = os.path.relpath(path, root)
                    st = os.lstat(path)
                    kind = stat.S_IFMT(st.st_mode)
                    fields = ["type=%o" % kind, "mode=%o" % stat.S_IMODE(st.st_mode)]
                    if owners: fields.append("owner=%d:%d" % (st.st_uid, st.st_gid))
                    if stat.S_ISREG(kind) or stat.S_ISLNK(kind): fields.append("size=%d" % st.st_size)
                    timed = (dirtimes or not stat.S_ISDIR(kind)) and (linktimes or not stat.S_ISLNK(kind))
                    if timed and times: fields.append("mtime=%d" % st.st_mtime_ns)
                    if stat.S_ISLNK(kind): fields.append("target=" + os.readlink(path))
                    if stat.S_ISCHR(kind) or stat.S_ISBLK(kind): fields.append("rdev=%d" % st.st_rdev)
                    if not stat.S_ISLNK(kind):
                        try:
                            attrs = sorted(a for a in os.listxattr(path, follow_symlinks=False) if a.startswith("user.") and a != "user.rootlesscontainers")
                            for a in attrs: fields.append("xattr:%s=%s" % (a, os.getxattr(path, a, follow_symlinks=False).hex()))
                        except OSError: pass
                    if stat.S_ISREG(kind) and st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        inodes.setdefault(key, rel)
                        fields.append("links-with=" + inodes[key])
                    result[rel] = " ".join(fields)
            json.dump(result, sys.stdout)
            """#
        let output = try Subprocess.run([
            "python3", "-c", script, root, owners ? "1" : "0", directoryTimes ? "1" : "0", symlinkTimes ? "1" : "0",
            excludeSystemContent ? "1" : "0", times ? "1" : "0",
        ]).check().standardOutput
        return try JSONDecoder().decode([String: String].self, from: output)
    }

    /// Human-readable differences between two snapshots (empty when equal).
    public static func differences(_ expected: [String: String], _ actual: [String: String]) -> [String] {
        var lines: [String] = []
        for key in Set(expected.keys).union(actual.keys).sorted() where expected[key] != actual[key] {
            lines.append("\(key): expected [\(expected[key] ?? "missing")] got [\(actual[key] ?? "missing")]")
        }
        return lines
    }

    /// The entry names of a (compressed) tar file, in archive order, as GNU tar lists them.
    public static func tarEntries(_ path: String) throws -> [String] {
        let output = try Subprocess.run(["tar", "--auto-compress", "-tf", path]).check().output
        return output.split(separator: "\n").map(String.init)
    }

    /// Writes a tar with Python's tarfile: each member is `(name, type, linkTarget, content)` where type
    /// is `file`, `dir`, `symlink` or `hardlink`. Used to craft hostile layers.
    public static func writeTar(_ path: String, members: [(name: String, type: String, link: String, content: String)]) throws {
        let script = #"""
            import io, json, sys, tarfile
            members = json.load(sys.stdin)
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
                for m in members:
                    info = tarfile.TarInfo(m["name"]); info.mtime = 1600000000
                    data = None
                    if m["type"] == "file":
                        data = m["content"].encode(); info.size = len(data); info.mode = 0o644
                    elif m["type"] == "dir": info.type = tarfile.DIRTYPE; info.mode = 0o755
                    elif m["type"] == "symlink": info.type = tarfile.SYMTYPE; info.linkname = m["link"]
                    elif m["type"] == "hardlink": info.type = tarfile.LNKTYPE; info.linkname = m["link"]
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
            """#
        let json = try JSONSerialization.data(
            withJSONObject: members.map { ["name": $0.name, "type": $0.type, "link": $0.link, "content": $0.content] })
        try Subprocess.run(["python3", "-c", script, path], input: json).check()
    }
}
