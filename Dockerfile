# regshim on Node 24 LTS. Build: docker build -t regshim .
# Run:   docker run -p 5000:5000 regshim --upstream https://registry.example.com
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The node@24 devDependency is not needed inside a Node 24 image.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# The ECR credential helper, so regshim can hold ECR credentials with IRSA and nothing else
# (docs/security.md, Credentials held by regshim); it caches tokens under $HOME/.ecr (/home/node).
RUN apt-get update \
 && apt-get install -y --no-install-recommends amazon-ecr-credential-helper ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
USER node
EXPOSE 5000
ENV REGSHIM_LISTEN=0.0.0.0:5000
HEALTHCHECK --interval=30s --timeout=3s CMD ["node", "-e", "fetch('http://127.0.0.1:5000/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The bin's shebang sets the memory tuning streaming needs (docs/performance.md).
ENTRYPOINT ["/app/bin/regshim.js"]
