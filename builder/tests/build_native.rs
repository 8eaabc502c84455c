//! `sreg build --backend native`: the real binary builds real images from a
//! tiny root filesystem (Debian's busybox-static) and from debootstrap; each
//! result is read with Debian's `siftool` and unpacked with `unsquashfs`.
//! These tests run as root (as CI does): chroot, user namespaces, proot
//! and debootstrap all need or work as root.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sreg_sif::Sif;

/// A folder with a busybox root filesystem in `bb/`, for `Bootstrap: localimage`.
struct Fixture {
    dir: tempfile::TempDir,
}

/// Busybox applets the recipes below use.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ls", "mkdir", "sleep", "wc", "id", "touch", "test", "true", "false",
    "grep", "env", "rm",
];

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("sreg-native-")
            .tempdir_in(scratch_root())
            .unwrap();
        let bin = dir.path().join("bb/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("/bin/busybox is missing: install busybox-static (scripts/setup)");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        Fixture { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    /// `sreg build RECIPE -o OUT --backend native ARGS...` in the fixture's folder.
    fn build(&self, recipe: &str, out: &str, args: &[&str]) -> Output {
        self.build_with(recipe, out, args, |_| {})
    }

    fn build_with(
        &self,
        recipe: &str,
        out: &str,
        args: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sreg"));
        cmd.current_dir(self.dir.path())
            .args(["build", recipe, "-o", out, "--backend", "native"])
            .args(args);
        tweak(&mut cmd);
        cmd.output().expect("run sreg")
    }

    /// Names in the fixture's folder that a build may leave behind by mistake.
    fn leftovers(&self) -> Vec<String> {
        fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".partial") || n.starts_with(".sreg-build-"))
            .collect()
    }
}

/// Tests' scratch folders go on the same filesystem as the build folders.
fn scratch_root() -> PathBuf {
    std::env::temp_dir()
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "sreg build failed:\n{err}");
    err
}

fn siftool(args: &[&str]) -> String {
    let out = Command::new("siftool")
        .args(args)
        .output()
        .expect("siftool is missing: install siftool (scripts/setup)");
    assert!(out.status.success(), "siftool {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Unpacks the primary partition of `sif` into `dest` with unsquashfs.
fn unpack(sif: &Path, dest: &Path) {
    let image = Sif::open(sif).unwrap();
    let offset = image.primary_partition().unwrap().offset();
    let out = Command::new("unsquashfs")
        .args(["-no-progress", "-o"])
        .arg(offset.to_string())
        .arg("-d")
        .arg(dest)
        .arg(sif)
        .output()
        .unwrap();
    assert!(out.status.success(), "unsquashfs: {out:?}");
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn labels(root: &Path) -> serde_json::Value {
    serde_json::from_str(&read(root, ".singularity.d/labels.json")).unwrap()
}

const FULL_RECIPE: &str = r#"Bootstrap: localimage
From: bb

%setup
    echo "from setup" > "$APPTAINER_ROOTFS/setup.txt"

%files
    data/*.txt /opt/data/
    data/notes.md

%environment
    export GREETING=hello

%post
    echo "post ran" > /post.txt
    id -u > /post-uid
    echo "export FROM_POST=yes" >> "$APPTAINER_ENVIRONMENT"
    echo "built.by native-test" >> "$APPTAINER_LABELS"
    test -f /opt/data/a.txt

%runscript
    echo "run: $GREETING $FROM_POST $*"

%startscript
    echo started

%labels
    Maintainer Ada Lovelace
    Version 1.2

%help
    Prints a greeting.

%test
    test -f /post.txt
    echo "test ran"

%apprun hello
    echo "hello app $SCIF_APPNAME"

%appinstall hello
    echo installed > installed.txt

%appenv hello
    export APPVAR=set

%applabels hello
    Role greeter

%apphelp hello
    The hello app.
"#;

#[test]
fn localimage_build_lays_out_the_image_like_apptainer() {
    let fx = Fixture::new();
    fx.write("data/a.txt", "A\n");
    fx.write("data/b.txt", "B\n");
    fx.write("data/notes.md", "notes\n");
    fx.write("full.def", FULL_RECIPE);
    let err = ok(&fx.build("full.def", "full.sif", &[]));
    assert!(err.contains("test ran"), "%test did not run:\n{err}");
    assert!(fx.leftovers().is_empty(), "{:?}", fx.leftovers());

    let sif = fx.path("full.sif");
    let sif_str = sif.to_str().unwrap();
    let list = siftool(&["list", sif_str]);
    assert!(list.contains("Def.FILE"), "{list}");
    assert!(list.contains("JSON.Labels"), "{list}");
    assert!(list.contains("JSON.Generic"), "{list}");
    assert!(list.contains("FS (Squashfs/*System/amd64)"), "{list}");
    let def = siftool(&["dump", "1", sif_str]);
    assert_eq!(
        def, FULL_RECIPE,
        "the definition object is the recipe as written"
    );
    let info = siftool(&["info", "4", sif_str]);
    assert!(
        info.contains("Squashfs") && info.contains("amd64"),
        "{info}"
    );
    let sif_labels: serde_json::Value =
        serde_json::from_str(&siftool(&["dump", "2", sif_str])).unwrap();
    let inspect: serde_json::Value =
        serde_json::from_str(&siftool(&["dump", "3", sif_str])).unwrap();
    assert_eq!(inspect["type"], "container");
    assert_eq!(
        inspect["data"]["attributes"]["labels"]["Maintainer"],
        "Ada Lovelace"
    );
    assert!(
        inspect["data"]["attributes"]["apps"]["hello"]["runscript"]
            .as_str()
            .unwrap()
            .contains("hello app")
    );

    let root = fx.path("unpacked");
    unpack(&sif, &root);
    // What %setup, %files and %post made.
    assert_eq!(read(&root, "setup.txt"), "from setup\n");
    assert_eq!(read(&root, "opt/data/a.txt"), "A\n");
    assert_eq!(read(&root, "opt/data/b.txt"), "B\n");
    assert_eq!(read(&root, "data/notes.md"), "notes\n");
    assert_eq!(read(&root, "post.txt"), "post ran\n");
    assert_eq!(read(&root, "post-uid"), "0\n");
    assert!(!root.join(".post.script").exists());
    assert!(!root.join(".build.labels").exists());
    // Apptainer's layout.
    for f in [
        "actions/exec",
        "actions/run",
        "actions/shell",
        "actions/start",
        "actions/test",
        "env/01-base.sh",
        "env/90-environment.sh",
        "env/94-appsbase.sh",
        "env/95-apps.sh",
        "env/99-base.sh",
        "env/99-runtimevars.sh",
        "runscript",
        "startscript",
        "test",
        "runscript.help",
        "labels.json",
        "Singularity",
    ] {
        let p = root.join(".singularity.d").join(f);
        assert!(p.is_file(), "{f} is missing");
    }
    assert!(root.join(".singularity.d/libs").is_dir());
    for d in ["proc", "sys", "dev", "tmp", "home", "root", "var/tmp"] {
        assert!(root.join(d).is_dir(), "/{d} is missing");
    }
    assert_eq!(read(&root, "etc/hosts"), "");
    assert_eq!(read(&root, "etc/resolv.conf"), "");
    for (link, target) in [
        ("singularity", ".singularity.d/runscript"),
        ("environment", ".singularity.d/env/90-environment.sh"),
        (".exec", ".singularity.d/actions/exec"),
        (".run", ".singularity.d/actions/run"),
        (".shell", ".singularity.d/actions/shell"),
        (".test", ".singularity.d/actions/test"),
    ] {
        assert_eq!(
            fs::read_link(root.join(link)).unwrap(),
            Path::new(target),
            "/{link}"
        );
    }
    assert_eq!(read(&root, ".singularity.d/Singularity"), FULL_RECIPE);
    assert_eq!(
        read(&root, ".singularity.d/runscript.help").trim(),
        "Prints a greeting."
    );
    assert!(read(&root, ".singularity.d/env/90-environment.sh").contains("export GREETING=hello"));
    assert!(read(&root, ".singularity.d/env/91-environment.sh").contains("FROM_POST=yes"));
    assert!(read(&root, ".singularity.d/runscript").starts_with("#!/bin/sh\n"));
    let l = labels(&root);
    assert_eq!(l, sif_labels, "the SIF's labels object is labels.json");
    assert_eq!(l["Maintainer"], "Ada Lovelace");
    assert_eq!(l["Version"], "1.2");
    assert_eq!(l["built.by"], "native-test");
    assert_eq!(l["org.label-schema.schema-version"], "1.0");
    assert_eq!(l["org.label-schema.build-arch"], "amd64");
    assert_eq!(
        l["org.label-schema.usage.singularity.deffile.bootstrap"],
        "localimage"
    );
    assert_eq!(l["org.label-schema.usage.singularity.deffile.from"], "bb");
    assert_eq!(
        l["org.label-schema.usage.sreg.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        l["org.label-schema.build-date"]
            .as_str()
            .unwrap()
            .ends_with("_UTC")
    );
    // SCIF app.
    let app = root.join("scif/apps/hello");
    assert_eq!(read(&app, "installed.txt"), "installed\n");
    assert!(read(&app, "scif/runscript").contains("hello app"));
    assert!(read(&app, "scif/env/90-environment.sh").contains("APPVAR=set"));
    assert_eq!(read(&app, "scif/runscript.help").trim(), "The hello app.");
    let app_labels: serde_json::Value =
        serde_json::from_str(&read(&app, "scif/labels.json")).unwrap();
    assert_eq!(app_labels["Role"], "greeter");
    assert_eq!(app_labels["SCIF_APP_NAME"], "hello");
    assert!(root.join("scif/data/hello/input").is_dir());
    assert!(read(&root, ".singularity.d/env/94-appsbase.sh").contains("SCIF_APPROOT_hello"));

    // The action scripts work: run the image as `apptainer run` would.
    let run = |env: &[(&str, &str)], action: &str, args: &[&str]| {
        let out = Command::new(which("chroot"))
            .arg(&root)
            .arg(action)
            .args(args)
            .env_clear()
            .env("PATH", "/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{action}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        run(&[], "/.singularity.d/actions/run", &["a", "b"]),
        "run: hello yes a b\n"
    );
    assert_eq!(
        run(
            &[("APPTAINER_APPNAME", "hello")],
            "/.singularity.d/actions/run",
            &[]
        ),
        "hello app hello\n"
    );
    assert_eq!(
        run(
            &[("APPTAINER_APPNAME", "hello")],
            "/.singularity.d/actions/exec",
            &["sh", "-c", "echo $APPVAR"]
        ),
        "set\n"
    );
    assert_eq!(run(&[], "/.singularity.d/actions/test", &[]), "test ran\n");

    // The build record names the backend.
    let record: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fx.path("full.build.json")).unwrap()).unwrap();
    assert_eq!(record["backend"], "native");
}

#[test]
fn scratch_build_with_only_files() {
    let fx = Fixture::new();
    fx.write("payload/tool.sh", "#!/bin/sh\necho tool\n");
    fx.write(
        "scratch.def",
        "Bootstrap: scratch\n\n%files\n    payload/tool.sh /usr/bin/tool\n\n%labels\n    Kind data\n",
    );
    ok(&fx.build("scratch.def", "scratch.sif", &[]));
    let root = fx.path("unpacked");
    unpack(&fx.path("scratch.sif"), &root);
    assert_eq!(read(&root, "usr/bin/tool"), "#!/bin/sh\necho tool\n");
    assert!(root.join(".singularity.d/actions/run").is_file());
    assert_eq!(labels(&root)["Kind"], "data");
    // Nothing else: no busybox, no shell.
    assert!(!root.join("bin").exists());
    let list = siftool(&["list", fx.path("scratch.sif").to_str().unwrap()]);
    assert!(list.contains("FS (Squashfs/*System/amd64)"), "{list}");
}

#[test]
fn multi_stage_copies_from_an_earlier_stage_and_ships_only_the_last() {
    let fx = Fixture::new();
    fx.write(
        "multi.def",
        r#"Bootstrap: localimage
From: bb
Stage: build

%post
    mkdir -p /opt/app
    echo "artifact" > /opt/app/result
    echo "junk" > /build-only

Bootstrap: scratch
Stage: final

%files from build
    /opt/app/result /result
    /bin/busybox /bin/busybox

%runscript
    exec /bin/busybox cat /result
"#,
    );
    ok(&fx.build("multi.def", "multi.sif", &[]));
    let root = fx.path("unpacked");
    unpack(&fx.path("multi.sif"), &root);
    assert_eq!(read(&root, "result"), "artifact\n");
    assert!(!root.join("build-only").exists());
    assert!(root.join("bin/busybox").is_file());
    let l = labels(&root);
    assert_eq!(
        l["org.label-schema.usage.singularity.deffile.bootstrap"],
        "scratch"
    );
    assert_eq!(
        l["org.label-schema.usage.singularity.deffile.stage"],
        "final"
    );
}

#[test]
fn failing_post_shows_the_log_tail_and_leaves_no_image() {
    let fx = Fixture::new();
    fx.write(
        "fail.def",
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    echo about to fail\n    echo the-last-words\n    exit 7\n    echo never\n",
    );
    let out = fx.build("fail.def", "fail.sif", &["--quiet"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("%post of stage 1"), "{err}");
    assert!(err.contains("exit code 7"), "{err}");
    assert!(
        err.contains("the-last-words"),
        "the log tail is not shown:\n{err}"
    );
    assert!(!fx.path("fail.sif").exists());
    assert!(fx.leftovers().is_empty(), "{:?}", fx.leftovers());
    // The log stays, with the failing command in it.
    let log = fs::read_to_string(fx.path("fail.build.log")).unwrap();
    assert!(log.contains("+ exit 7"), "{log}");
}

#[test]
fn failing_test_fails_the_build_unless_notest() {
    let fx = Fixture::new();
    fx.write(
        "t.def",
        "Bootstrap: localimage\nFrom: bb\n\n%test\n    echo checking\n    exit 3\n",
    );
    let out = fx.build("t.def", "t.sif", &["--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("%test of stage 1") && err.contains("exit code 3"),
        "{err}"
    );
    assert!(!fx.path("t.sif").exists());
    ok(&fx.build("t.def", "t.sif", &["--notest"]));
    assert!(fx.path("t.sif").is_file());
}

#[test]
fn missing_mksquashfs_names_its_package() {
    let fx = Fixture::new();
    fx.write("s.def", "Bootstrap: scratch\n");
    let empty = fx.path("emptybin");
    fs::create_dir_all(&empty).unwrap();
    let out = fx.build_with("s.def", "s.sif", &[], |c| {
        c.env("PATH", &empty);
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mksquashfs is not installed"), "{err}");
    assert!(err.contains("squashfs-tools"), "{err}");
    assert!(!fx.path("s.sif").exists());
}

#[test]
fn recipe_error_points_at_the_line() {
    let fx = Fixture::new();
    fx.write(
        "bad.def",
        "Bootstrap: localimage\nFrom: bb\n\n%bogus\n    x\n",
    );
    let out = fx.build("bad.def", "bad.sif", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.def") && err.contains("line 4"), "{err}");
}

#[test]
fn files_source_that_is_missing_is_an_error_with_its_line() {
    let fx = Fixture::new();
    fx.write(
        "m.def",
        "Bootstrap: scratch\n\n%files\n    nothere.txt /x\n",
    );
    let out = fx.build("m.def", "m.sif", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4") && err.contains("nothere.txt"),
        "{err}"
    );
}

/// A recipe whose %post checks the kernel filesystems and whose %test
/// checks that the root filesystem is read-only.
fn isolation_recipe(read_only_test: bool) -> String {
    let mut r = String::from(
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    test -e /proc/self/status\n    test -c /dev/null\n    \
         echo x > /dev/null\n    id -u > /post-uid\n",
    );
    if read_only_test {
        r.push_str(
            "\n%test\n    if touch /probe 2>/dev/null; then echo the root is writable; exit 1; fi\n    echo read-only ok\n",
        );
    }
    r
}

fn build_with_isolation(mode: &str, read_only_test: bool) {
    let fx = Fixture::new();
    fx.write("iso.def", &isolation_recipe(read_only_test));
    let err = ok(&fx.build("iso.def", "iso.sif", &["--isolation", mode]));
    if read_only_test {
        assert!(err.contains("read-only ok"), "{err}");
    }
    let root = fx.path("unpacked");
    unpack(&fx.path("iso.sif"), &root);
    assert_eq!(read(&root, "post-uid"), "0\n");
    // The bind mounts did not leak into the image.
    assert_eq!(fs::read_dir(root.join("proc")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("dev")).unwrap().count(), 0);
}

#[test]
fn isolation_chroot() {
    build_with_isolation("chroot", true);
}

#[test]
fn isolation_userns() {
    build_with_isolation("userns", true);
}

#[test]
fn isolation_proot() {
    // proot cannot make the root read-only.
    build_with_isolation("proot", false);
}

#[test]
fn isolation_auto_falls_back_to_proot_without_cap_sys_admin() {
    // As in an unprivileged container: root without CAP_SYS_ADMIN cannot
    // make a mount namespace.
    let fx = Fixture::new();
    fx.write("iso.def", &isolation_recipe(false));
    let out = fx.build_with("iso.def", "iso.sif", &[], |c| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--bounding-set".into(),
            "-sys_admin".into(),
            env!("CARGO_BIN_EXE_sreg").into(),
        ];
        args.extend(c.get_args().map(|a| a.to_os_string()));
        let mut wrapped = Command::new("setpriv");
        wrapped.args(args).current_dir(c.get_current_dir().unwrap());
        *c = wrapped;
    });
    let err = ok(&out);
    assert!(err.contains("running under proot"), "{err}");
}

#[test]
fn isolation_auto_without_proot_uses_a_bare_chroot() {
    let fx = Fixture::new();
    fx.write(
        "bare.def",
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    id -u > /post-uid\n",
    );
    // A PATH with the tools the build needs but no proot.
    let bin = fx.path("hostbin");
    fs::create_dir_all(&bin).unwrap();
    for tool in ["mksquashfs", "cp"] {
        let found = which(tool);
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let out = fx.build_with("bare.def", "bare.sif", &[], |c| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--bounding-set".into(),
            "-sys_admin".into(),
            env!("CARGO_BIN_EXE_sreg").into(),
        ];
        args.extend(c.get_args().map(|a| a.to_os_string()));
        let mut wrapped = Command::new(which("setpriv"));
        wrapped
            .args(args)
            .current_dir(c.get_current_dir().unwrap())
            .env("PATH", &bin);
        *c = wrapped;
    });
    let err = ok(&out);
    assert!(err.contains("chroot without /proc"), "{err}");
    let root = fx.path("unpacked");
    unpack(&fx.path("bare.sif"), &root);
    assert_eq!(read(&root, "post-uid"), "0\n");
}

fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn timeout_stops_post_and_leaves_nothing() {
    let fx = Fixture::new();
    fx.write(
        "slow.def",
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    sleep 37\n",
    );
    let started = Instant::now();
    let out = fx.build("slow.def", "slow.sif", &["--timeout", "2s", "--quiet"]);
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--timeout"), "{err}");
    assert!(!fx.path("slow.sif").exists());
    assert!(fx.leftovers().is_empty(), "{:?}", fx.leftovers());
    // The sleep inside the image was stopped with the build (37: no other test sleeps so).
    std::thread::sleep(Duration::from_millis(300));
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.lines().any(|l| l.trim() == "sleep 37"), "{ps}");
}

/// The metadata-only recipe packed in place, and the same with a %files
/// line (so the tree is hard-linked): both leave the sandbox as it was and
/// give the same image.
#[test]
fn packing_a_sandbox_in_place_or_linked_leaves_it_untouched_and_agrees() {
    let fx = Fixture::new();
    // A sandbox that already has Apptainer metadata, as `apptainer build --sandbox` leaves.
    fx.write("bb/.singularity.d/labels.json", "{\"Old\": \"label\"}");
    fx.write("bb/.singularity.d/runscript", "#!/bin/sh\necho old\n");
    fx.write("bb/.singularity.d/Singularity", "Bootstrap: scratch\n");
    fx.write(
        "bb/.singularity.d/env/90-environment.sh",
        "#!/bin/sh\nexport OLD=1\n",
    );
    fx.write("bb/etc/hosts", "127.0.0.1 sandbox\n");
    std::os::unix::fs::symlink(".singularity.d/actions/run", fx.path("bb/.run")).unwrap();
    fs::create_dir_all(fx.path("bb/dev")).unwrap();
    let mknod = Command::new("mknod")
        .arg(fx.path("bb/dev/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(mknod.success());
    fx.write("extra.txt", "extra\n");
    let header = "Bootstrap: localimage\nFrom: bb\n";
    let body =
        "\n%labels\n    New label\n\n%environment\n    export NEW=2\n\n%runscript\n    echo new\n";
    let recipe = format!("{header}{body}");
    let recipe = recipe.as_str();
    fx.write("inplace.def", recipe);
    let linked = format!("{header}\n%files\n    extra.txt /extra.txt\n{body}");
    fx.write("link.def", &linked);
    let before = snapshot(&fx.path("bb"));
    let epoch = |c: &mut Command| {
        c.env("SOURCE_DATE_EPOCH", "1700000000");
    };
    let err = ok(&fx.build_with("inplace.def", "inplace.sif", &[], epoch));
    assert!(
        err.contains("where it stands"),
        "not packed in place:\n{err}"
    );
    assert_eq!(
        snapshot(&fx.path("bb")),
        before,
        "packing in place changed the source"
    );
    let err = ok(&fx.build_with("link.def", "link.sif", &[], epoch));
    assert!(err.contains("linking"), "the tree was not linked:\n{err}");
    assert_eq!(
        snapshot(&fx.path("bb")),
        before,
        "linking changed the source"
    );

    let a = fx.path("unpacked-inplace");
    let b = fx.path("unpacked-link");
    unpack(&fx.path("inplace.sif"), &a);
    unpack(&fx.path("link.sif"), &b);
    let l = labels(&a);
    assert_eq!(l["Old"], "label");
    assert_eq!(l["New"], "label");
    assert!(read(&a, ".singularity.d/runscript").contains("echo new"));
    let env = read(&a, ".singularity.d/env/90-environment.sh");
    assert!(env.contains("OLD=1") && env.contains("NEW=2"), "{env}");
    assert_eq!(
        read(&a, ".singularity.d/bootstrap_history/Singularity0"),
        "Bootstrap: scratch\n"
    );
    assert_eq!(read(&a, ".singularity.d/Singularity"), recipe);
    assert_eq!(read(&a, "etc/hosts"), "127.0.0.1 sandbox\n");
    assert!(!a.join("dev/null").exists(), "device nodes are left out");
    assert!(a.join(".singularity.d/actions/exec").is_file());
    assert_eq!(read(&b, "extra.txt"), "extra\n");
    // Both images hold the same files, but for what the recipes differ in.
    let differ = [".singularity.d/Singularity", "extra.txt"];
    let strip = |root: &Path| -> std::collections::BTreeMap<String, (Vec<u8>, u32)> {
        let prefix = root.display().to_string();
        snapshot(root)
            .into_iter()
            .map(|(p, c, mode, _)| (p[prefix.len()..].to_string(), (c, mode)))
            .filter(|(p, _)| !differ.iter().any(|d| p.ends_with(d)))
            .collect()
    };
    let (sa, sb) = (strip(&a), strip(&b));
    let keys: std::collections::BTreeSet<&String> = sa.keys().chain(sb.keys()).collect();
    let mismatched: Vec<String> = keys
        .into_iter()
        .filter(|k| sa.get(*k) != sb.get(*k))
        .map(|k| {
            let mode =
                |m: Option<&(Vec<u8>, u32)>| m.map(|(c, mode)| (c.len(), format!("{mode:o}")));
            format!(
                "{k}: in place {:?}, linked {:?}",
                mode(sa.get(k)),
                mode(sb.get(k))
            )
        })
        .collect();
    assert!(mismatched.is_empty(), "{mismatched:#?}");
}

/// Every file's path, content, mode and link count.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32, u64)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let content = if m.is_file() {
            fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        out.push((
            e.path().display().to_string(),
            content,
            m.mode(),
            if m.is_dir() { 0 } else { m.nlink() },
        ));
    }
    out
}

#[test]
fn localimage_from_a_sif_builds_on_it() {
    let fx = Fixture::new();
    fx.write(
        "base.def",
        "Bootstrap: localimage\nFrom: bb\n\n%environment\n    export BASE=1\n\n%labels\n    Layer base\n",
    );
    ok(&fx.build("base.def", "base.sif", &[]));
    fx.write(
        "top.def",
        "Bootstrap: localimage\nFrom: base.sif\n\n%environment\n    export TOP=2\n\n%labels\n    Layer top\n\n%post\n    test -x /bin/busybox\n",
    );
    ok(&fx.build("top.def", "top.sif", &[]));
    let root = fx.path("unpacked");
    unpack(&fx.path("top.sif"), &root);
    let env = read(&root, ".singularity.d/env/90-environment.sh");
    assert!(env.contains("BASE=1") && env.contains("TOP=2"), "{env}");
    assert_eq!(labels(&root)["Layer"], "top");
    // The base image's definition is kept in the history.
    assert!(read(&root, ".singularity.d/bootstrap_history/Singularity0").contains("export BASE=1"));
}

#[test]
fn debootstrap_builds_a_debian_image() {
    let fx = Fixture::new();
    fx.write(
        "deb.def",
        "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: http://deb.debian.org/debian\n\n\
         %post\n    dpkg -l | grep -c '^ii' > /n\n    . /etc/os-release && echo \"$VERSION_CODENAME\" > /codename\n",
    );
    let out = fx.build("deb.def", "deb.sif", &["--quiet"]);
    ok(&out);
    let root = fx.path("unpacked");
    unpack(&fx.path("deb.sif"), &root);
    let n: u32 = read(&root, "n").trim().parse().unwrap();
    assert!(n > 50, "only {n} packages");
    assert_eq!(read(&root, "codename"), "bookworm\n");
    assert!(root.join("usr/bin/apt").is_file());
    // No device nodes: the image unpacks without root.
    for e in walkdir::WalkDir::new(root.join("dev")) {
        let t = e.unwrap().file_type();
        use std::os::unix::fs::FileTypeExt;
        assert!(!t.is_char_device() && !t.is_block_device());
    }
    let l = labels(&root);
    assert_eq!(
        l["org.label-schema.usage.singularity.deffile.osversion"],
        "bookworm"
    );
}

/// `sreg build` as an unprivileged user (nobody): %post and %test in a user
/// namespace where the user is root, and the tree copied when it may not
/// be hard-linked (files of others, fs.protected_hardlinks).
#[test]
fn a_user_builds_in_a_user_namespace() {
    let fx = Fixture::new();
    fx.write("extra.txt", "extra\n");
    fx.write(
        "user.def",
        "Bootstrap: localimage\nFrom: bb\n\n%files\n    extra.txt /extra.txt\n\n\
         %post\n    id -u > /uid\n\n%test\n    if touch /probe 2>/dev/null; then exit 1; fi\n    echo ro-ok\n",
    );
    fx.write(
        "deb.def",
        "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: http://deb.debian.org/debian\n",
    );
    fx.write(
        "link.def",
        "Bootstrap: localimage\nFrom: bb\n\n%files\n    extra.txt /extra.txt\n",
    );
    // The folder is the user's; the sandbox stays root's.
    for f in ["", "user.def", "link.def", "deb.def", "extra.txt"] {
        std::os::unix::fs::chown(fx.path(f), Some(65534), Some(65534)).unwrap();
    }
    let as_nobody = |c: &mut Command| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--reuid=65534".into(),
            "--regid=65534".into(),
            "--clear-groups".into(),
            env!("CARGO_BIN_EXE_sreg").into(),
        ];
        args.extend(c.get_args().map(|a| a.to_os_string()));
        let mut wrapped = Command::new(which("setpriv"));
        wrapped.args(args).current_dir(c.get_current_dir().unwrap());
        *c = wrapped;
    };
    let out = fx.build_with("user.def", "user.sif", &[], as_nobody);
    let err = ok(&out);
    assert!(err.contains("ro-ok"), "{err}");
    let root = fx.path("unpacked");
    unpack(&fx.path("user.sif"), &root);
    assert_eq!(read(&root, "uid"), "0\n");
    assert_eq!(read(&root, "extra.txt"), "extra\n");
    // Packed as root's files, as Apptainer does for users (-all-root).
    assert_eq!(fs::metadata(root.join("uid")).unwrap().uid(), 0);

    // Nothing writes into the tree but %files: it would be linked.
    let out = fx.build_with("link.def", "link.sif", &[], as_nobody);
    let err = ok(&out);
    assert!(err.contains("copying the tree instead"), "{err}");
    unpack(&fx.path("link.sif"), &fx.path("unpacked-link"));
    assert_eq!(read(&fx.path("unpacked-link"), "extra.txt"), "extra\n");

    let out = fx.build_with("deb.def", "deb.sif", &[], as_nobody);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root"), "{err}");
    assert!(!fx.path("deb.sif").exists());
}

#[test]
fn missing_debootstrap_and_proot_name_their_packages() {
    let fx = Fixture::new();
    fx.write(
        "deb.def",
        "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: http://deb.debian.org/debian\n",
    );
    fx.write(
        "p.def",
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    true\n",
    );
    // A PATH with what a build needs but debootstrap and proot.
    let bin = fx.path("hostbin");
    fs::create_dir_all(&bin).unwrap();
    for tool in ["mksquashfs", "cp"] {
        std::os::unix::fs::symlink(which(tool), bin.join(tool)).unwrap();
    }
    let path = |c: &mut Command| {
        c.env("PATH", &bin);
    };
    let out = fx.build_with("deb.def", "deb.sif", &[], path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("debootstrap is not installed") && err.contains("install debootstrap"),
        "{err}"
    );
    let out = fx.build_with("p.def", "p.sif", &["--isolation", "proot"], path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("proot is not installed") && err.contains("install proot"),
        "{err}"
    );
    assert!(fx.leftovers().is_empty(), "{:?}", fx.leftovers());
}
