# Warren as a drop-in for the rabbitmq:3-management image: same ports (5672, 5671, 15672,
# 15692), same volume (/var/lib/rabbitmq), same configuration files
# (/etc/rabbitmq/rabbitmq.conf and conf.d/*.conf), same RABBITMQ_* variables, the
# "Server startup complete" line testcontainers waits for, and rabbitmqctl /
# rabbitmq-diagnostics for scripts and healthchecks.
#
#   docker build -t warren .
#   docker run -p 5672:5672 -p 15672:15672 -e RABBITMQ_DEFAULT_USER=shop \
#       -e RABBITMQ_DEFAULT_PASS=s3cret warren

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY config config
# Cargo.toml names a bench and an example by path; cargo refuses the manifest without them.
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin warren --bin warrenctl

FROM debian:bookworm-slim
RUN groupadd --system rabbitmq && useradd --system --gid rabbitmq --home-dir /var/lib/rabbitmq rabbitmq \
 && mkdir -p /var/lib/rabbitmq /etc/rabbitmq/conf.d \
 && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
COPY --from=build /src/target/release/warren /usr/local/bin/warren
COPY --from=build /src/target/release/warrenctl /usr/local/bin/warrenctl
COPY --chown=rabbitmq:rabbitmq docker/10-defaults.conf /etc/rabbitmq/conf.d/10-defaults.conf
RUN ln -s warrenctl /usr/local/bin/rabbitmqctl \
 && ln -s warrenctl /usr/local/bin/rabbitmq-diagnostics
# As the official image: its config file and conf.d are read when present (10-defaults.conf
# lets guest in from outside the container, as RabbitMQ's image does), data lives under
# the volume.
ENV RABBITMQ_CONFIG_FILE=/etc/rabbitmq/rabbitmq.conf \
    RABBITMQ_CONFIG_FILES=/etc/rabbitmq/conf.d \
    RABBITMQ_MNESIA_BASE=/var/lib/rabbitmq/mnesia \
    HOME=/var/lib/rabbitmq
VOLUME /var/lib/rabbitmq
USER rabbitmq
EXPOSE 5671 5672 15672 15692
STOPSIGNAL SIGTERM
CMD ["warren"]
