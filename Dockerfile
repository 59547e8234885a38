# Graphlake for production: points at MongoDB and S3 by settings; no embedded FerretDB inside.
FROM node:20-slim AS assets
WORKDIR /app/assets
COPY assets/package.json assets/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# The web app's bundle (its types come from the schema, so that comes along).
FROM node:20-slim AS webapp
WORKDIR /app/webapp
COPY webapp/package.json webapp/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY graphql/schema.graphql /app/graphql/schema.graphql
COPY webapp/index.html webapp/vite.config.ts webapp/tsconfig.json webapp/codegen.yml ./
COPY webapp/src ./src
RUN npm run build

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GRAPHLAKE_HOST=0.0.0.0 GRAPHLAKE_PORT=8000 GRAPHLAKE_DATA_DIR=/data \
    GRAPHLAKE_GRAPHIQL_ASSETS_DIR=/app/assets/node_modules GRAPHLAKE_WEBAPP_DIR=/app/webapp/dist GRAPHLAKE_LOG_JSON=true
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY graphlake graphlake
COPY graphlake_client graphlake_client
COPY resolvers resolvers
COPY services services
COPY documents documents
COPY storage storage
COPY migrations migrations
COPY graphql graphql
# The versions the suite passed with (requirements.lock, as `make test` installs them), as constraints:
# the code leans on private parts of Strawberry and graphql-core (resolvers/internals.py), so an open
# range resolved on a later day could build an image of versions never tested together. Constraints
# pin without installing the lock's dev tools; pip takes no hashes in a constraints file, so each
# requirement line is kept with its environment marker (numpy has one per Python) and without them.
RUN grep -E '^[A-Za-z0-9_.-]+==' requirements.lock | sed 's/ *\\$//' > /tmp/constraints.txt \
    && pip install --no-cache-dir -c /tmp/constraints.txt ".[brotli,tracing]" && rm /tmp/constraints.txt \
    && useradd --system --uid 10001 --home /data graphlake && mkdir -p /data && chown graphlake /data
COPY --from=assets /app/assets/node_modules /app/assets/node_modules
COPY --from=webapp /app/webapp/dist /app/webapp/dist
USER graphlake
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s CMD python -c "import os,urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('GRAPHLAKE_PORT', '8000')).status != 200)"
CMD ["graphlake", "serve"]
