//! Compiles the default XDP program (`bpf/xsk.bpf.c`) into a libbpf skeleton in
//! `OUT_DIR`. The skeleton embeds the BPF object, so binaries need no file at run time.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SRC: &str = "bpf/xsk.bpf.c";
/// A user-style program for the embedding test; compiled here, used only by tests.
const TEST_SRC: &str = "tests/bpf/user_xsk.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed={TEST_SRC}");
    println!("cargo:rerun-if-changed=tests/bpf");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        // The BPF program and libbpf only exist on Linux; other targets build the
        // portable parts of the crate.
        return;
    }
    linux::build();
}

mod linux {
    use super::*;

    pub fn build() {
        let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let clang = find_clang().unwrap_or_else(|| {
            panic!(
                "\n\nfluxcapacitor: no clang found to compile {SRC}.\n\
                 Install it (Debian/Ubuntu: `apt-get install clang`), or point BPF_CLANG \
                 at a clang binary that supports `-target bpf`.\n"
            )
        });
        let mut args: Vec<String> = vec!["-O2".into(), "-g".into(), "-Wall".into()];
        if let Some(dir) = multiarch_include() {
            args.push(format!("-I{}", dir.display()));
        }
        compile(
            &clang,
            &args,
            SRC,
            &out.join("xsk.bpf.o"),
            &out.join("xsk.skel.rs"),
        );
        // Every other bpf/*.bpf.c (helper programs of the examples: the traffic
        // generator, the XDP_DROP counter) becomes `$OUT_DIR/<name>.bpf.o`, to be
        // embedded with `include_bytes!`.
        compile_dir(&clang, &args, "bpf", SRC, &out);
        // Helper programs of the tests (tests/bpf/*.bpf.c but the user-style one):
        // `$OUT_DIR/<name>.bpf.o`.
        compile_dir(&clang, &args, "tests/bpf", TEST_SRC, &out);
        if Path::new(TEST_SRC).exists() {
            compile(
                &clang,
                &args,
                TEST_SRC,
                &out.join("user_xsk.bpf.o"),
                &out.join("user_xsk.skel.rs"),
            );
        }
    }

    fn compile(clang: &Path, args: &[String], src: &str, obj: &Path, skel: &Path) {
        let result = libbpf_cargo::SkeletonBuilder::new()
            .source(src)
            .obj(obj)
            .clang(clang)
            .clang_args(args)
            // Formatting the generated file is cosmetic; a missing or broken rustfmt
            // must not fail the build.
            .rustfmt(obj.with_extension("no-rustfmt"))
            .build_and_generate(skel);
        if let Err(e) = result {
            panic!(
                "\n\nfluxcapacitor: compiling {src} with {} failed: {e:#}\n\
                 Needed: clang with the BPF target, kernel UAPI headers (linux-libc-dev) \
                 and, for <asm/types.h>, the multiarch include directory \
                 (Debian: `apt-get install clang linux-libc-dev libelf-dev zlib1g-dev pkg-config`).\n",
                clang.display()
            );
        }
    }

    /// Every `DIR/*.bpf.c` but `skip` becomes `$OUT_DIR/<name>.bpf.o`.
    fn compile_dir(clang: &Path, args: &[String], dir: &str, skip: &str, out: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut srcs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".bpf.c") && p != Path::new(skip))
            .collect();
        srcs.sort();
        for src in srcs {
            let name = src.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let obj = out.join(name.trim_end_matches(".c").to_string() + ".o");
            compile_obj(clang, args, &src.to_string_lossy(), &obj);
        }
    }

    /// Compiles a BPF object only (no skeleton).
    fn compile_obj(clang: &Path, args: &[String], src: &str, obj: &Path) {
        let result = libbpf_cargo::SkeletonBuilder::new()
            .source(src)
            .obj(obj)
            .clang(clang)
            .clang_args(args)
            .build();
        if let Err(e) = result {
            panic!(
                "\n\nfluxcapacitor: compiling {src} with {} failed: {e:#}\n",
                clang.display()
            );
        }
    }

    /// `BPF_CLANG`, then `clang`, then versioned names from newest to oldest.
    fn find_clang() -> Option<PathBuf> {
        if let Some(c) = env::var_os("BPF_CLANG") {
            return Some(PathBuf::from(c));
        }
        let mut names = vec!["clang".to_string()];
        names.extend((11..=22).rev().map(|v| format!("clang-{v}")));
        names.into_iter().find_map(|n| which(&n))
    }

    fn which(name: &str) -> Option<PathBuf> {
        let path = env::var_os("PATH")?;
        env::split_paths(&path)
            .chain(["/usr/bin".into(), "/usr/local/bin".into()])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    /// `<linux/bpf.h>` pulls in `<asm/types.h>`, which Debian keeps under the
    /// multiarch directory that `-target bpf` does not search by itself.
    fn multiarch_include() -> Option<PathBuf> {
        let from_gcc = Command::new("gcc")
            .arg("-print-multiarch")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
        let guess = match arch.as_str() {
            "x86_64" => Some("x86_64-linux-gnu".to_string()),
            "aarch64" => Some("aarch64-linux-gnu".to_string()),
            "riscv64" => Some("riscv64-linux-gnu".to_string()),
            "powerpc64" => Some("powerpc64le-linux-gnu".to_string()),
            "s390x" => Some("s390x-linux-gnu".to_string()),
            "arm" => Some("arm-linux-gnueabihf".to_string()),
            _ => None,
        };
        [from_gcc, guess]
            .into_iter()
            .flatten()
            .map(|t| Path::new("/usr/include").join(t))
            .find(|p| p.join("asm").is_dir())
    }
}
