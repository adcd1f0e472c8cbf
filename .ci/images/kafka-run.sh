#!/bin/sh
# As the official image does: every KAFKA_<NAME> variable becomes a broker property (NAME
# lowercased, "_" -> ".", "__" -> "_", "___" -> "-"), except the variables Kafka's own scripts
# read; the storage is formatted with CLUSTER_ID (or a fixed default) on first start.
set -eu
config=/home/appuser/server.properties
: > "$config"
env | grep '^KAFKA_' | while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | \
      KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_LOG4J_ROOT_LOGLEVEL | \
      KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL | KAFKA_JMX_HOSTNAME) continue ;;
  esac
  key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/\x01/g' -e 's/_/./g' -e 's/\x01/_/g')
  printf '%s=%s\n' "$key" "$value" >> "$config"
done
grep -q '^log\.dirs=' "$config" || echo 'log.dirs=/home/appuser/kraft-combined-logs' >> "$config"

classpath='/opt/kafka/libs/*'
log4j=-Dlog4j.configuration=file:/opt/kafka/config/log4j.properties
java $log4j -cp "$classpath" kafka.tools.StorageTool format --ignore-formatted \
  "--cluster-id=${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$config"
# shellcheck disable=SC2086 # the *_OPTS variables are word lists, as in kafka-run-class.sh
exec java ${KAFKA_HEAP_OPTS:--Xmx1g -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true $log4j ${KAFKA_OPTS:-} \
  -cp "$classpath" kafka.Kafka "$config"
