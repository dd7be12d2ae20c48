/// boxstack's own version, shown by `boxstack --version` and `boxstack doctor`.
public enum BoxstackVersion {
    public static let current = "0.2.0"
}
