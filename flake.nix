{
  description = "potato: a NixOS fleet described by hosts/*.toml";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      # Hosts are discovered: every hosts/<name>.toml is a host. Nothing is listed by hand.
      hostFiles = builtins.filter (f: builtins.match ".*\\.toml" f != null) (
        builtins.attrNames (builtins.readDir ./hosts)
      );
      hostNames = map (f: builtins.head (builtins.match "(.*)\\.toml" f)) hostFiles;
      forHosts = f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) hostNames);

      systems = [ "x86_64-linux" "aarch64-linux" ];
      forSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);

      generatedDir = name: ./modules/generated + "/${name}";
      requireGenerated =
        name:
        if builtins.pathExists (generatedDir name + "/default.nix") then
          generatedDir name
        else
          throw "potato: host ${name} has no modules/generated/${name}/; run `potato gen` (and git add it)";

      # A host's own modules: the shared base, potato's generated module, and
      # what `potato bootstrap` detected (hosts/<name>/hardware.nix), if any.
      hardwareFile = name: ./hosts + "/${name}/hardware.nix";
      hostModules =
        name:
        [
          ./modules/base.nix
          (requireGenerated name)
        ]
        ++ (if builtins.pathExists (hardwareFile name) then [ (hardwareFile name) ] else [ ]);

      mkHost =
        name:
        nixpkgs.lib.nixosSystem {
          modules = hostModules name;
          specialArgs.potato = {
            inherit name;
            generated = requireGenerated name;
          };
        };

      # Images: which kinds a host gets follows its hardware profile (the
      # `hardware = "..."` line of its host file). Each is the host's own NixOS
      # system plus the nixpkgs image module, so an image boots exactly the
      # configuration `potato deploy` would activate.
      hardwareOf = name: (builtins.fromTOML (builtins.readFile (./hosts + "/${name}.toml"))).hardware;
      imageModules = {
        # Amlogic's boot ROM reads u-boot from the card's first sectors: an MBR
        # card (sd-image's default), no Raspberry Pi firmware partition, extlinux,
        # and u-boot (cross-built from x86_64; its signing tool is x86_64-only)
        # written behind the MBR after the image is built.
        sd = [
          "${nixpkgs}/nixos/modules/installer/sd-card/sd-image-aarch64.nix"
          ./modules/images/lepotato-sd.nix
        ];
        raw-efi = [ "${nixpkgs}/nixos/modules/virtualisation/disk-image.nix" { image.format = "raw"; image.efiSupport = true; } ];
        iso = [ "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix" ./modules/images/installer.nix ];
        qcow2 = [ "${nixpkgs}/nixos/modules/virtualisation/disk-image.nix" { image.format = "qcow2"; image.efiSupport = true; } ];
        vma = [ "${nixpkgs}/nixos/modules/virtualisation/proxmox-image.nix" ];
        # The installer `potato bootstrap` kexecs into on a machine running
        # another Linux: a tree with kernel, initrd, command line, kexec, run.
        kexec = [ "${nixpkgs}/nixos/modules/installer/netboot/netboot-minimal.nix" ./modules/images/kexec.nix ];
      };
      # The build attribute each kind's image is under.
      imageAttr = {
        sd = "sdImage";
        raw-efi = "image";
        iso = "isoImage";
        qcow2 = "image";
        vma = "VMA";
        kexec = "potatoKexec";
      };
      kindsFor = {
        lepotato = [ "sd" ];
        n250 = [ "raw-efi" "iso" "kexec" ];
        proxmox-vm = [ "qcow2" "vma" ];
      };
      # The installer ISO is the installer profile carrying the host's system in
      # its store (not the host's configuration booted live); every other image
      # is the host's own system in image form.
      mkImage =
        name: kind:
        (nixpkgs.lib.nixosSystem {
          modules =
            (if kind == "iso" || kind == "kexec" then [ ] else hostModules name)
            ++ imageModules.${kind};
          specialArgs.potato = {
            inherit name;
            generated = requireGenerated name;
            image = kind;
            kexecRun = ./modules/images/kexec-run.sh;
            toplevel = (mkHost name).config.system.build.toplevel;
          };
        }).config.system.build.${imageAttr.${kind}};
      # images.<host> is the host's first kind (`nix build .#images.lepotato`),
      # with every kind as an attribute (`.#images.n250.iso`) and the list of
      # kinds as potatoKinds.
      imagesFor =
        name:
        let
          kinds = kindsFor.${hardwareOf name};
          byKind = builtins.listToAttrs (map (kind: { name = kind; value = mkImage name kind; }) kinds);
        in
        byKind.${builtins.head kinds} // byKind // { potatoKinds = kinds; };

      potatoFor =
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        pkgs.rustPlatform.buildRustPackage {
          pname = "potato";
          version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).package.version;
          src = builtins.path {
            path = ./.;
            name = "potato-src";
            filter = path: type: builtins.match ".*/(target|result.*)" path == null;
          };
          cargoLock.lockFile = ./Cargo.lock;
          # Cargo.toml asks ssh2 for a vendored OpenSSL so that `cargo build` needs no
          # libssl-dev on Debian; that build wants perl and make. Inside Nix, link
          # nixpkgs' OpenSSL instead (openssl-sys honours OPENSSL_NO_VENDOR).
          env.OPENSSL_NO_VENDOR = "1";
          nativeBuildInputs = [ pkgs.pkg-config ];
          buildInputs = [ pkgs.openssl pkgs.zlib ];
          # Unit tests only: the integration tests need root, network namespaces
          # and Debian packages, which the Nix sandbox does not have.
          cargoTestFlags = [ "--lib" ];
          meta.mainProgram = "potato";
        };
    in
    {
      nixosConfigurations = forHosts mkHost;

      # images.<host>[.<kind>]: `nix build .#images.lepotato`, `.#images.n250.iso`,
      # or `potato image HOST`.
      images = forHosts imagesFor;

      # Deployment metadata (target, mode, rollback, health checks) per host, so one
      # evaluation gives the deploy engine every toplevel and its settings.
      potatoHosts = forHosts (name: builtins.fromJSON (builtins.readFile (generatedDir name + "/deploy.json")));

      packages = forSystems (system: rec {
        potato = potatoFor system;
        default = potato;
      });

      apps = forSystems (system: {
        default = {
          type = "app";
          program = "${self.packages.${system}.potato}/bin/potato";
        };
      });

      devShells = forSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          default = pkgs.mkShell {
            packages = with pkgs; [ cargo rustc clippy rustfmt pkg-config openssl zlib nix nftables ];
          };
        }
      );

      formatter = forSystems (system: nixpkgs.legacyPackages.${system}.nixfmt-rfc-style);

      checks = forSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          potato = self.packages.${system}.potato;
        in
        {
          # Generated modules must match the host files.
          gen = pkgs.runCommand "potato-gen-check" { nativeBuildInputs = [ potato ]; } ''
            potato gen --check --repo ${self} && touch $out
          '';
          # The Rust unit tests (buildRustPackage runs them in its check phase).
          tests = potato;
        }
      );
    };
}
