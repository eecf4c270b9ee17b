# burrow in a container: the single executable (`npm run compile`) on a
# slim, non-root base. (Not built by the tests: the machines they run on
# have no container engine.)
#
#   docker build -t burrow .
#   docker run -v /etc/burrow:/etc/burrow:ro -v burrow-state:/var/lib/burrow \
#     -p 7000:7000 -p 7001:7001 -p 1080:1080 burrow server -c /etc/burrow/server.yaml
#   docker run -e BURROW_KEY_FILE=/run/secrets/office.key … burrow agent --server … --name office --allow …
#
# In a container the server's listen addresses must not be loopback:
# `listen: { agents: 0.0.0.0:7000, socks: 0.0.0.0:1080, clients: 0.0.0.0:7001 }`.

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY src/ src/
COPY runtimes/ runtimes/
COPY generated/ generated/
COPY scripts/compile.ts scripts/
RUN npm run compile && ./dist/burrow --version && mkdir -p /out/state && cp dist/burrow /out/burrow

# glibc and nothing else: no shell, no package manager; user nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/burrow /usr/local/bin/burrow
# The server's state (its auto TLS certificate lands in .burrow/ here).
COPY --from=build --chown=65532:65532 /out/state /var/lib/burrow
WORKDIR /var/lib/burrow
VOLUME ["/var/lib/burrow"]
USER 65532:65532
# agents, clients (burrow client), SOCKS5, /healthz and /metrics
EXPOSE 7000 7001 1080 7002
ENTRYPOINT ["/usr/local/bin/burrow"]
CMD ["server", "-c", "/etc/burrow/server.yaml"]
