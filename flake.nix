{
  description = "Gate: a node runner for a private peer-to-peer AI-compute network";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in {
      # `nix develop` gives python plus the system packages of the test rig
      # (DESIGN.md section 12); `make test` then installs the Python packages into .venv.
      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.python311
            pkgs.gnumake
            pkgs.gmp          # py-libp2p builds fastecdsa against it
            pkgs.cmake        # llama-cpp-python compiles llama.cpp
            pkgs.gcc
            pkgs.pebble       # ACME test server
            pkgs.bind         # named, tsig-keygen
            pkgs.nginx        # the benchmarks' fast upstream
            pkgs.chromium     # UI tests
            pkgs.curl
            pkgs.iproute2     # ip netns for multi-host tests
            pkgs.fish         # `gate completion fish` is loaded in fish
            pkgs.zsh          # and `gate completion zsh` in zsh
          ];
          shellHook = ''
            export CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
          '';
        };
      });
    };
}
